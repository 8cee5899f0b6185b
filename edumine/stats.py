"""Intervals for shares (topic and theme prevalence per window): a seeded percentile bootstrap."""

from __future__ import annotations

import numpy as np


def bootstrap_share_interval(hits: np.ndarray, totals: np.ndarray, *, level: float = 0.95,
                             resamples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap interval of ``hits / totals`` for many shares at once.

    Resampling the ``totals`` documents of a window with replacement makes the number of hits
    Binomial(totals, hits / totals); drawing that directly is the same bootstrap without the documents.
    Windows with no documents get NaN bounds.
    """
    hits = np.asarray(hits, dtype=np.int64)
    totals = np.asarray(totals, dtype=np.int64)
    rng = np.random.default_rng(seed)
    share = np.divide(hits, totals, out=np.zeros(len(hits), dtype=float), where=totals > 0)
    low = np.full(len(hits), np.nan)
    high = np.full(len(hits), np.nan)
    some = totals > 0
    if some.any():
        draws = rng.binomial(totals[some][None, :], share[some][None, :], size=(resamples, int(some.sum())))
        fractions = draws / totals[some][None, :]
        alpha = (1 - level) / 2
        low[some] = np.quantile(fractions, alpha, axis=0)
        high[some] = np.quantile(fractions, 1 - alpha, axis=0)
    return low, high
