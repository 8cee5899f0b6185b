"""``themes.tfidf_static_logreg.v1``: TF-IDF words and static MiniLM vectors side by side, one logistic
regression per theme; optionally a static embedding table fine-tuned on the labels, averaged in.

The static vectors are all-MiniLM-L6-v2's word pieces distilled the model2vec way
(``embeddings.static_minilm.v1``, built on first use from the local weights into the lake's ``models/static``):
a text's vector is the mean of its pieces' vectors, so labelling costs a tokenisation and a table look-up
instead of a transformer pass (thousands of docs/s on one core, against ~50 for int8 MiniLM).

``tune_epochs > 0`` also trains the static table and a linear multi-label head on the fit's texts
(``EmbeddingBag`` mean, class-balanced BCE, AdamW, one torch thread, seeded: bit-identical for the same
inputs) and averages its probabilities in at ``tuned_weight``. The tuned rows (only pieces the texts contain
change) and the head are cached under ``<cache_dir>/static-tune/<digest>.npz``, the digest covering the
settings, the static model, the exact texts, labels and weights: the same fit never runs twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from edumine.models.themes.codebook import Codebook
from edumine.models.themes.estimators import _PerThemeLinear, _TfidfAndVectors, classifiers
from edumine.models.themes.fit_cache import fit_key, load_fit, store_fit

log = logging.getLogger(__name__)

STATIC_BACKEND = "embeddings.static_minilm.v1"


@classifiers.register("themes.tfidf_static_logreg.v1")
class TfidfStaticLogReg(_TfidfAndVectors, _PerThemeLinear):
    """TF-IDF word n-grams + static MiniLM vectors (scaled by ``static_weight``), one balanced logistic
    regression per theme; ``tune_epochs > 0`` averages in a fine-tuned static model at ``tuned_weight``."""

    def __init__(self, codebook: Codebook | None = None, C: float = 1.0, static_weight: float = 1.0,
                 ngram_max: int = 1, min_df: int = 2, codebook_weight: float = 3.0, pca_dims: int | None = 256,
                 sif_coefficient: float | None = 1e-4, tune_epochs: int = 0, tune_lr: float = 3e-3,
                 tune_batch_size: int = 32, tuned_weight: float = 0.5, max_pos_weight: float = 10.0,
                 cache_dir: str | None = None, seed: int = 0) -> None:
        self.codebook = codebook
        self.C = C
        self.static_weight = static_weight
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.codebook_weight = codebook_weight
        self.pca_dims = pca_dims
        self.sif_coefficient = sif_coefficient
        self.tune_epochs = tune_epochs
        self.tune_lr = tune_lr
        self.tune_batch_size = tune_batch_size
        self.tuned_weight = tuned_weight
        self.max_pos_weight = max_pos_weight
        self.cache_dir = cache_dir
        self.seed = seed

    # -- static vectors ----------------------------------------------------------------------------------
    def _embedder(self) -> Any:
        from edumine.models.embeddings.static import StaticMiniLMEmbedder

        return StaticMiniLMEmbedder(pca_dims=self.pca_dims, sif_coefficient=self.sif_coefficient)

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder().encode(list(texts))  # unit length (the model's normalize)

    def _dense(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(texts)

    def _dense_weight(self) -> float:
        return self.static_weight

    # -- estimator ---------------------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], Y: np.ndarray) -> TfidfStaticLogReg:
        super().fit(texts, Y)
        self.tuned_: dict[str, np.ndarray] | None = None
        if self.tune_epochs > 0:
            all_texts, all_Y, weights = self._training_set(texts, Y)
            key = self._fit_key(all_texts, all_Y, weights)
            self.tuned_ = load_fit(self.cache_dir, "static-tune", key)
            if self.tuned_ is None:
                self.tuned_ = self._tune(all_texts, all_Y, weights)
                store_fit(self.cache_dir, "static-tune", key, self.tuned_)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        scores = super().predict_proba(texts)
        if self.tuned_ is not None and len(texts):
            w = self.tuned_weight
            scores = (1 - w) * scores + w * self._tuned_scores(texts)
        return scores

    # -- the tuned static model ---------------------------------------------------------------------------
    def _pieces(self, texts: list[str]) -> list[list[int]]:
        return self._embedder().model().tokenize(texts)

    def _tune(self, texts: list[str], Y: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        from edumine.models.themes.static_tune import train_static

        table = np.asarray(self._embedder().model().embedding, dtype=np.float32)
        log.info("fine-tuning the static table on %d texts (%d epochs)", len(texts), self.tune_epochs)
        return train_static(table, self._pieces(texts), Y, weights, epochs=self.tune_epochs, lr=self.tune_lr,
                            batch_size=self.tune_batch_size, max_pos_weight=self.max_pos_weight, seed=self.seed)

    def _tuned_scores(self, texts: list[str]) -> np.ndarray:
        from edumine.models.themes.static_tune import score_static

        table = np.asarray(self._embedder().model().embedding, dtype=np.float32)
        return score_static(table, self.tuned_, self._pieces(texts))

    def _settings(self) -> dict[str, Any]:
        keep = ("pca_dims", "sif_coefficient", "tune_epochs", "tune_lr", "tune_batch_size", "max_pos_weight", "seed")
        return {k: getattr(self, k) for k in keep} | {"static": self._embedder().key, "version": 1}

    def _fit_key(self, texts: Sequence[str], Y: np.ndarray, weights: np.ndarray) -> str:
        return fit_key(self._settings(), (hashlib.sha1(text.encode("utf-8")).digest() for text in texts), Y, weights)
