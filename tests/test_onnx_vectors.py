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
    assert embedder.params()["one_thread"] is True  # nor those of ONNX Runtime's multi-threaded runs


def test_vectors_do_not_depend_on_how_many_threads_encode_them() -> None:
    # Long texts too: ONNX Runtime's own threads split their products by core count (last-bit differences).
    texts = [TEXT, " ".join([TEXT] * 8), *OTHERS, *(f"{text} ({n})" for n, text in enumerate(OTHERS * 4))]
    one = MiniLMOnnxEmbedder(threads=1).encode(texts)
    for threads in (2, 3):
        assert np.array_equal(MiniLMOnnxEmbedder(threads=threads).encode(texts), one)
    assert MiniLMOnnxEmbedder(threads=4).lanes() == 4


def test_lanes_follow_omp_num_threads_as_dask_workers_set_it(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert MiniLMOnnxEmbedder().lanes() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert MiniLMOnnxEmbedder().lanes() >= 1
