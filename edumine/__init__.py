"""edumine: text mining and machine learning over educator social media."""

__version__ = "0.1.0"
