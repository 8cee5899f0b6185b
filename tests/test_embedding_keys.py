"""The embedding cache key of a fitted TF-IDF+SVD backend names its fitted state: the same fit in another process
gives the same key (regression: it changed with every process, so topic_ids' embedding_key and the saved model's
metadata differed between two identical runs)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
from edumine.models.embeddings.backends import TfidfSvdEmbedder
texts = [f"word{i % 17} lemma{i % 5} other{i % 3} rare{i} also{i % 2}" for i in range(300)]
embedder = TfidfSvdEmbedder(dims=8, min_df=2, max_df=0.45).fit(texts)
print(embedder.key, embedder.encode(texts[:3]).round(6).tolist())
"""


def _fit_in_a_process(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True).stdout


def test_the_same_fit_has_the_same_key_in_every_process() -> None:
    first, second = _fit_in_a_process("1"), _fit_in_a_process("2")
    assert first == second
