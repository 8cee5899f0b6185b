"""One module per pipeline stage after collection (see ``edumine.stages``)."""
