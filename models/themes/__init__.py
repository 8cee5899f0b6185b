"""SDL themes: codebook, labelled data, classifiers, calibration, prevalence, zero-shot, model card, labelling loop."""
