"""Zero-shot themes from the codebook text alone, for a codebook with no labels yet.

``themes.zeroshot.v2`` embeds each theme's descriptions (label + definition, cues, examples) with the
MiniLM backend, centres posts and descriptions on the mean description (so that "a teacher writing" does
not dominate), and takes a post's similarity to a theme as its best match among that theme's descriptions.
A post gets a theme when that similarity is at least ``floor`` and within ``margin`` of its best theme.
The score (``sigmoid(slope * min(sim - floor, sim - best + margin))``, 0.5 at the decision) only ranks
posts: it is not a probability, and the model card, ``theme_prevalence.method`` and the report say
``zero-shot``. ``floor`` and ``margin`` defaults were chosen on the SDL codebook's labels
(``benchmarks/themes_compare.py --zero-shot``), the quality measured there is in ``docs/themes.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from edumine.estimator import Estimator

from edumine.models.themes.codebook import Codebook
from edumine.models.themes.estimators import DEFAULT_BACKEND, _BackendEmbedding, classifiers


@classifiers.register("themes.zeroshot.v2")
class CodebookZeroShot(_BackendEmbedding, Estimator):
    zero_shot = True

    def __init__(self, codebook: Codebook | None = None, floor: float = 0.15, margin: float = 0.05,
                 slope: float = 20.0, backend: str = DEFAULT_BACKEND, backend_params: dict[str, Any] | None = None,
                 cache_dir: str | None = None, seed: int = 0) -> None:
        self.codebook = codebook
        self.floor = floor
        self.margin = margin
        self.slope = slope
        self.backend = backend
        self.backend_params = backend_params
        self.cache_dir = cache_dir
        self.seed = seed

    def fit(self, texts: Sequence[str] = (), Y: np.ndarray | None = None) -> CodebookZeroShot:
        """Learns from the codebook only; ``texts`` and ``Y`` are ignored (the estimator contract)."""
        if self.codebook is None:
            raise ValueError("themes.zeroshot.v2 needs the codebook")
        descriptions, owners = [], []
        for theme in self.codebook.themes:
            own = theme.descriptions()
            owners.append(list(range(len(descriptions), len(descriptions) + len(own))))
            descriptions += own
        vectors = self._embed(descriptions)
        self.mean_ = vectors.mean(axis=0)
        centred = vectors - self.mean_
        self.prototypes_ = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
        self.owners_ = owners
        return self

    def similarity(self, texts: Sequence[str]) -> np.ndarray:
        X = self._embed(list(texts)) - self.mean_
        X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        sims = X @ self.prototypes_.T
        return np.stack([sims[:, columns].max(axis=1) for columns in self.owners_], axis=1)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        sims = self.similarity(texts)
        best = sims.max(axis=1, keepdims=True)
        gap = np.minimum(sims - self.floor, sims - best + self.margin)
        return 1.0 / (1.0 + np.exp(-self.slope * gap))
