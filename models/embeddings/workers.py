"""Encoding on Dask workers (``embed_with_cache(map=..., workers=...)``): the flow's process fits the backend and
writes the cache; each worker rebuilds the fitted backend from its name, parameters and the state file in the
lake's cache folder, and encodes a slice of the docs the cache lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def encoder_on_workers(embedder: Any, cache_root: Path, map: Any, workers: int) -> Any:
    state = str(Path(cache_root) / embedder.base_key) if embedder.needs_fit else None
    spec = {"name": embedder.name, "params": embedder.params(), "state": state, "key": embedder.key}

    def encode(_: Any, texts: list[str], progress: Any) -> np.ndarray:
        step = -(-len(texts) // workers) or 1  # equal slices: one per worker (a task costs ~1 s of bookkeeping)
        parts = map(encode_slice, [{**spec, "texts": texts[start:start + step]}
                                   for start in range(0, len(texts), step)], name="embed")
        progress.advance(len(texts))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    return encode


_WORKER_EMBEDDERS: dict[str, Any] = {}


def encode_slice(name: str, params: dict[str, Any], state: str | None, key: str, texts: list[str]) -> np.ndarray:
    """A map step (run on a worker): ``texts`` encoded by the backend ``name`` with ``params`` and, for a backend
    that needs fitting, the fitted state in the folder ``state`` (the lake's cache); ``key`` checks that it is
    the state the flow's process fitted. The backend is built once per worker process."""
    embedder = _WORKER_EMBEDDERS.get(key)
    if embedder is None:
        from edumine.models.embeddings.backends import make_embedder

        embedder = make_embedder(name, **params)
        if state is not None and not embedder.load_state(Path(state)):
            raise RuntimeError(f"{name}: no fitted state in {state}; the workers must see the lake's cache folder")
        if embedder.key != key:
            raise RuntimeError(f"{name}: the state in {state} is not the one this run fitted ({embedder.key} != "
                               f"{key}); was the cache rewritten during the run?")
        _WORKER_EMBEDDERS.clear()  # a long-lived worker keeps the latest run's backend only
        _WORKER_EMBEDDERS[key] = embedder
    return np.asarray(embedder.encode(texts), dtype=np.float32)
