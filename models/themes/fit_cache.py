"""Trained weights cached by what they were trained from: settings, texts, labels and sample weights.

The tuned classifiers (``themes.minilm_finetuned.v1``, ``themes.tfidf_static_logreg.v1`` with tuning) train
for minutes; the same inputs load the weights again instead (``<cache_dir>/<kind>/<key>.npz``), so a rerun
never retrains. Each classifier digests its texts its own way (``text_digests``), which keeps existing keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def fit_key(settings: dict[str, Any], text_digests: Iterable[bytes], Y: np.ndarray, weights: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for text in text_digests:
        digest.update(text)
    digest.update(np.ascontiguousarray(Y, dtype=np.int8).tobytes())
    digest.update(np.ascontiguousarray(weights, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def load_fit(cache_dir: str | Path | None, kind: str, key: str) -> dict[str, np.ndarray] | None:
    file = None if cache_dir is None else Path(cache_dir) / kind / f"{key}.npz"
    if file is None or not file.is_file():
        return None
    with np.load(file, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def store_fit(cache_dir: str | Path | None, kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    if cache_dir is None:
        return
    folder = Path(cache_dir) / kind
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, folder / f"{key}.npz")  # readers see the whole file or none
