"""Topic lineage across time windows (emerge, persist, grow, decline, fade, split, merge) and its evaluation."""
