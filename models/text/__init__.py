"""Text preparation: cleaning of raw Reddit, forum and blog text, and spaCy preprocessing into lemmas."""
