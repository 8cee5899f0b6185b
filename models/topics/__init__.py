"""Topic modelling: the estimator, stable topic ids, nightly updates, catch-all detection, windows and quality."""
