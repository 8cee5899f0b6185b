"""embeddings.minilm_onnx.v1: a text's int8 vector does not depend on the texts encoded with it (regression:
dynamic quantisation scaled by the whole batch, so the same doc got another vector, and another theme score,
in another batch)."""

from __future__ import annotations

import numpy as np

from edumine.models.embeddings.onnx import MiniLMOnnxEmbedder

TEXT = "I am a new teacher and my classroom management is falling apart, any advice for 7th graders?"
OTHERS = ["short", "Looking for free worksheets on fractions for grade 4, anything good? " * 3,
          "The district cut our planning time again."]


def test_a_texts_vector_is_the_same_alone_and_in_any_batch() -> None:
    embedder = MiniLMOnnxEmbedder()
    alone = embedder.encode([TEXT])[0]
    first, last = embedder.encode([TEXT, *OTHERS])[0], embedder.encode([*OTHERS, TEXT])[-1]
    assert np.array_equal(alone, first) and np.array_equal(alone, last)
    assert embedder.params()["alone"] is True  # cached vectors of the batched encoder are not reused
