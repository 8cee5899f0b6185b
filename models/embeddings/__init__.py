"""Document vectors: the registered embedding backends (TF-IDF+SVD, MiniLM, static, ONNX int8, concatenations)."""
