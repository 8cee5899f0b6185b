"""``themes.minilm_finetuned.v1``: MiniLM's top layer(s) and a multi-label head fine-tuned on the labels (CPU),
optionally averaged with a TF-IDF logistic regression per theme.

The lower layers stay frozen and their token states are cached by text hash (``models/themes/finetune.py``);
the tuned weights of every fit are cached under ``<cache_dir>/finetune/<digest>.npz``, the digest covering
the settings, the exact training texts, their labels and weights: the same fit is never run twice (nested
CV folds and reruns included), and the same inputs give bit-identical weights (seeded, fixed threads).
``epochs: 0`` is the frozen baseline: the unchanged top layer's mean-pooled vectors + a balanced logistic
regression per theme (the torch MiniLM at ``max_seq_length``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from edumine.estimator import Estimator

from edumine.models.themes.codebook import Codebook
from edumine.models.themes.estimators import TfidfLogReg, _logistic, classifiers, codebook_documents
from edumine.models.themes.fit_cache import fit_key, load_fit, store_fit

log = logging.getLogger(__name__)


@classifiers.register("themes.minilm_finetuned.v1")
class MiniLMFineTuned(Estimator):
    """Top ``tuned_layers`` of MiniLM + a linear head trained with class-balanced BCE: first the head alone
    (``probe_steps`` full-batch steps on the frozen vectors), then both for ``epochs`` passes (AdamW, linear
    warm-up/decay); scores averaged with TF-IDF + LR at ``tfidf_weight``. Not the default: on the shared
    labels it stays below ``themes.tfidf_minilm_logreg.v1`` (docs/themes.md, ``benchmarks/themes_finetune.py``)
    and one fit costs ~10 minutes of the 2 shared cores, so a training with ``threshold_folds: 5`` (six fits)
    takes an hour; set ``eval_folds: 0`` and ``threshold_folds: 2`` to try it."""

    def __init__(self, codebook: Codebook | None = None, epochs: int = 2, lr: float = 5e-5, head_lr: float = 1e-4,
                 batch_size: int = 16, tuned_layers: int = 1, max_seq_length: int = 128, head_tail: int = 0,
                 max_pos_weight: float = 10.0, probe_steps: int = 300, codebook_weight: float = 1.0, tfidf_weight: float = 0.5,
                 tfidf_C: float = 10.0, C: float = 1.0, threads: int = 2, cache_dir: str | None = None,
                 seed: int = 0) -> None:
        self.codebook = codebook
        self.epochs = epochs
        self.lr = lr
        self.head_lr = head_lr
        self.batch_size = batch_size
        self.tuned_layers = tuned_layers
        self.max_seq_length = max_seq_length
        self.head_tail = head_tail
        self.max_pos_weight = max_pos_weight
        self.probe_steps = probe_steps
        self.codebook_weight = codebook_weight
        self.tfidf_weight = tfidf_weight
        self.tfidf_C = tfidf_C
        self.C = C
        self.threads = threads
        self.cache_dir = cache_dir
        self.seed = seed

    # -- states and the weight cache -------------------------------------------------------------------
    def _lower(self) -> Any:
        from edumine.models.themes.finetune import LowerStates

        key = (self.cache_dir, self.max_seq_length, self.head_tail, self.tuned_layers)
        if key not in _LOWER:
            _LOWER[key] = LowerStates(self.cache_dir, max_seq_length=self.max_seq_length, head_tail=self.head_tail,
                                      tuned_layers=self.tuned_layers, threads=self.threads)
        return _LOWER[key]

    def _settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.get_params().items() if k not in ("codebook", "cache_dir", "tfidf_weight",
                                                                        "tfidf_C", "C")}

    def _fit_key(self, texts: Sequence[str], Y: np.ndarray, weights: np.ndarray) -> str:
        from edumine.models.themes.finetune import text_hash

        return fit_key(self._settings(), (text_hash(text).encode() for text in texts), Y, weights)


    # -- estimator ---------------------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], Y: np.ndarray) -> MiniLMFineTuned:
        from edumine.models.themes.finetune import score_top, train_top

        texts, Y = list(texts), np.asarray(Y)
        self.n_themes_ = Y.shape[1]
        all_texts, all_Y, weights = list(texts), Y, np.ones(len(texts), np.float32)
        if self.codebook is not None and self.codebook_weight > 0:
            extra_texts, extra_Y = codebook_documents(self.codebook)
            all_texts += extra_texts
            all_Y = np.vstack([Y, extra_Y])
            weights = np.concatenate([weights, np.full(len(extra_texts), self.codebook_weight, np.float32)])
        states = self._lower().states(all_texts)
        self.top_: dict[str, np.ndarray] | None = None
        self.heads_: list[Any] | None = None
        if self.epochs > 0:
            key = self._fit_key(all_texts, all_Y, weights)
            self.top_ = load_fit(self.cache_dir, "finetune", key)
            if self.top_ is None:
                tuned = train_top(states, all_Y, tuned_layers=self.tuned_layers, epochs=self.epochs, lr=self.lr,
                                  head_lr=self.head_lr, batch_size=self.batch_size,
                                  max_pos_weight=self.max_pos_weight, weights=weights,
                                  probe_steps=self.probe_steps, seed=self.seed,
                                  threads=self.threads)
                self.top_ = {k: v.numpy() for k, v in tuned.items()}
                store_fit(self.cache_dir, "finetune", key, self.top_)
        else:
            import torch

            from edumine.models.themes.finetune import top_module

            torch.manual_seed(self.seed)
            base = {k: v.detach().numpy().copy() for k, v in top_module(self.tuned_layers, self.n_themes_)
                    .state_dict().items()}
            X = score_top(_tensors(base), states, tuned_layers=self.tuned_layers, n_themes=self.n_themes_,
                          threads=self.threads, pooled=True)
            self.frozen_ = base
            self.heads_ = [float(all_Y[0, t]) if all_Y[:, t].min() == all_Y[:, t].max()
                           else _logistic(self.C, self.seed).fit(X, all_Y[:, t], sample_weight=weights)
                           for t in range(self.n_themes_)]
        self.tfidf_ = None
        if self.tfidf_weight > 0:
            self.tfidf_ = TfidfLogReg(codebook=self.codebook, C=self.tfidf_C, ngram_max=1,
                                      codebook_weight=self.codebook_weight, seed=self.seed).fit(texts, Y)
        return self

    def _encoder_scores(self, texts: list[str]) -> np.ndarray:
        from edumine.models.themes.finetune import score_top

        states = self._lower().states(texts)
        if self.top_ is not None:
            return score_top(_tensors(self.top_), states, tuned_layers=self.tuned_layers, n_themes=self.n_themes_,
                             threads=self.threads)
        X = score_top(_tensors(self.frozen_), states, tuned_layers=self.tuned_layers, n_themes=self.n_themes_,
                      threads=self.threads, pooled=True)
        out = np.zeros((len(texts), self.n_themes_))
        for t, head in enumerate(self.heads_ or []):
            out[:, t] = head if isinstance(head, float) else head.predict_proba(X)[:, 1]
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.n_themes_))
        scores = self._encoder_scores(texts)
        if self.tfidf_ is not None:
            w = self.tfidf_weight
            scores = (1 - w) * scores + w * self.tfidf_.predict_proba(texts)
        return scores


_LOWER: dict[tuple, Any] = {}


def _tensors(weights: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch

    return {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
