"""Intervals for shares (topic and theme prevalence per window): a seeded percentile bootstrap."""

from __future__ import annotations

import numpy as np


def bootstrap_share_interval(hits: np.ndarray, totals: np.ndarray, *, level: float = 0.95,
                             resamples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap interval of ``hits / totals`` for many shares at once.

    Resampling the ``totals`` documents of a window with replacement makes the number of hits
    Binomial(totals, hits / totals); drawing that directly is the same bootstrap without the documents.
    Windows with no documents get NaN bounds.

    The draws are made by inverse transform from one seeded set of ``resamples`` uniforms shared by every
    row (common random numbers), so a row's interval is a function of its own counts and the seed alone,
    never of which other rows are in the call: a nightly run that recomputes only the windows its new
    documents fall in gets exactly the intervals a full recomputation gets. The binomial quantile function is
    monotone, so the percentiles of the draws are the quantile function at the uniforms' order statistics
    (numpy's linear interpolation between them): four evaluations per row instead of ``resamples`` draws.
    """
    from scipy.stats import binom

    hits = np.asarray(hits, dtype=np.int64)
    totals = np.asarray(totals, dtype=np.int64)
    low = np.full(len(hits), np.nan)
    high = np.full(len(hits), np.nan)
    some = totals > 0
    if not some.any():
        return low, high
    uniforms = np.sort(np.random.default_rng(seed).random(resamples))
    n, p = totals[some], hits[some] / totals[some]
    alpha = (1 - level) / 2

    def percentile(q: float) -> np.ndarray:
        position = q * (resamples - 1)
        below = int(np.floor(position))
        above = min(below + 1, resamples - 1)
        fraction = position - below
        at_below = binom.ppf(uniforms[below], n, p)
        at_above = binom.ppf(uniforms[above], n, p)
        return (at_below + fraction * (at_above - at_below)) / n

    low[some] = percentile(alpha)
    high[some] = percentile(1 - alpha)
    return low, high
