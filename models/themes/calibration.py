"""Calibrated theme probabilities and prevalence estimates that correct for the classifier's error rates.

- ``Calibrator``: one monotone map per theme (Platt: logistic on the log-odds of the raw score; or isotonic),
  fitted on *out-of-fold* scores, so that the mean calibrated probability over a set of posts estimates the
  theme's share among them.
- ``calibration_report``: Brier score, expected calibration error (10 equal-width bins) per theme and a
  reliability table, from out-of-fold calibrated probabilities.
- ``ErrorRates``: per theme, the counts behind the true- and false-positive rates of the thresholded
  decisions, measured on out-of-fold decisions.
- Prevalence (quantification) estimators with intervals that carry both sampling uncertainty (bootstrap
  over docs) and classifier uncertainty (Beta draws of the CV error rates; for the mean probability, the
  CV spread of its group-level error):
  ``adjusted-classify-count`` (ACC: (observed share - fpr) / (tpr - fpr), clipped to [0, 1]) and
  ``mean-calibrated-probability`` (PCC). ``choose_method`` picks the one with the smaller error on the
  cross-validation groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACC = "adjusted-classify-count"
PCC = "mean-calibrated-probability"
ZERO_SHOT = "zero-shot"
METHODS = (ACC, PCC)
EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


class Calibrator:
    """Per-theme monotone maps from raw scores to probabilities (scikit-learn style: ``fit`` / ``transform``)."""

    def __init__(self, method: str = "platt") -> None:
        self.method = method

    def fit(self, Y: np.ndarray, P: np.ndarray) -> Calibrator:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        if self.method not in ("platt", "isotonic"):
            raise ValueError(f"unknown calibration {self.method!r}: use platt or isotonic")
        self.maps_: list[Any] = []
        for theme in range(Y.shape[1]):
            y = np.asarray(Y[:, theme])
            if y.min() == y.max():  # never (or always) labelled: its share is what the labels say
                self.maps_.append(float(y[0]))
            elif self.method == "isotonic":
                self.maps_.append(IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(P[:, theme], y))
            else:
                self.maps_.append(LogisticRegression(C=1e4, solver="lbfgs", max_iter=1000)
                                  .fit(_logit(P[:, theme])[:, None], y))
        return self

    def transform(self, P: np.ndarray) -> np.ndarray:
        out = np.zeros(P.shape, dtype=float)
        for theme, mapping in enumerate(self.maps_):
            if isinstance(mapping, float):
                out[:, theme] = mapping
            elif self.method == "isotonic":
                out[:, theme] = mapping.predict(P[:, theme])
            else:
                out[:, theme] = mapping.predict_proba(_logit(P[:, theme])[:, None])[:, 1]
        return np.clip(out, 0.0, 1.0)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            total += rows.mean() * abs(float(p[rows].mean()) - float(y[rows].mean()))
    return total


def reliability_table(Y: np.ndarray, P: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Pooled over themes: per probability bin, how many (doc, theme) pairs, mean predicted, observed share."""
    y, p = np.asarray(Y, dtype=float).ravel(), np.asarray(P, dtype=float).ravel()
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "pairs": int(mask.sum()),
                         "mean_p": round(float(p[mask].mean()), 4), "observed": round(float(y[mask].mean()), 4)})
    return rows


def calibration_report(Y: np.ndarray, P: np.ndarray, theme_ids: Sequence[str]) -> dict[str, Any]:
    per_theme = {}
    for column, theme in enumerate(theme_ids):
        y, p = Y[:, column].astype(float), P[:, column]
        per_theme[theme] = {"brier": round(float(np.mean((p - y) ** 2)), 4),
                            "ece": round(expected_calibration_error(y, p), 4),
                            "mean_p": round(float(p.mean()), 4), "share": round(float(y.mean()), 4)}
    return {"per_theme": per_theme,
            "brier_mean": round(float(np.mean([m["brier"] for m in per_theme.values()])), 4),
            "ece_mean": round(float(np.mean([m["ece"] for m in per_theme.values()])), 4),
            "reliability": reliability_table(Y, P)}


@dataclass
class ErrorRates:
    """Counts behind each theme's true- and false-positive rate (out-of-fold decisions)."""

    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray
    tn: np.ndarray

    @classmethod
    def measure(cls, Y: np.ndarray, decisions: np.ndarray) -> ErrorRates:
        Y, D = np.asarray(Y).astype(bool), np.asarray(decisions).astype(bool)
        return cls(tp=(Y & D).sum(0), fn=(Y & ~D).sum(0), fp=(~Y & D).sum(0), tn=(~Y & ~D).sum(0))

    @property
    def tpr(self) -> np.ndarray:
        return (self.tp + 0.5) / (self.tp + self.fn + 1.0)

    @property
    def fpr(self) -> np.ndarray:
        return (self.fp + 0.5) / (self.fp + self.tn + 1.0)

    def draws(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, themes) draws of tpr and fpr from their Beta posteriors (Jeffreys prior)."""
        tpr = rng.beta(self.tp + 0.5, self.fn + 0.5, size=(n, len(self.tp)))
        fpr = rng.beta(self.fp + 0.5, self.tn + 0.5, size=(n, len(self.fp)))
        return tpr, fpr


def adjusted_count(share: np.ndarray, tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """Adjusted classify-and-count; where tpr - fpr is too small to divide by, the raw share is kept."""
    gap = tpr - fpr
    safe = np.where(gap > 0.05, gap, 1.0)
    adjusted = np.where(gap > 0.05, (share - fpr) / safe, share)
    return np.clip(adjusted, 0.0, 1.0)


@dataclass
class PrevalenceModel:
    """What the prevalence estimators need from a trained model, measured by cross-validation."""

    method: str
    rates: ErrorRates | None = None
    pcc_bias_sd: np.ndarray | None = None  # spread of (true share - mean probability) over CV groups
    group_errors: dict[str, float] = field(default_factory=dict)


BOOTSTRAP_MAX_DOCS = 5000


def _resampled_means(X: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples, columns) bootstrap means of X's rows; beyond BOOTSTRAP_MAX_DOCS rows the bootstrap
    distribution of a mean is normal to well within the interval's precision, and far cheaper."""
    n = len(X)
    if n <= BOOTSTRAP_MAX_DOCS:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) @ X / n
    sd = X.std(axis=0) / np.sqrt(n)
    return X.mean(axis=0) + rng.normal(0.0, 1.0, size=(resamples, X.shape[1])) * sd


def estimate(P: np.ndarray, decisions: np.ndarray, prevalence: PrevalenceModel, *, level: float = 0.95,
             resamples: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(share, low, high) per theme for one group of docs (rows of ``P`` / ``decisions``)."""
    n, k = P.shape
    if n == 0:
        return np.zeros(k), np.zeros(k), np.ones(k)
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    if prevalence.method == ACC and prevalence.rates is not None:
        rates = prevalence.rates
        point = adjusted_count(decisions.mean(axis=0), rates.tpr, rates.fpr)
        observed = _resampled_means(decisions.astype(float), rng, resamples)
        tpr, fpr = rates.draws(rng, resamples)
        replicates = adjusted_count(observed, tpr, fpr)
    elif prevalence.method == PCC:
        point = P.mean(axis=0)
        replicates = _resampled_means(P, rng, resamples)
        if prevalence.pcc_bias_sd is not None:
            replicates = replicates + rng.normal(0.0, 1.0, size=(resamples, k)) * prevalence.pcc_bias_sd
        replicates = np.clip(replicates, 0.0, 1.0)
    else:  # plain classify-and-count (zero-shot: no measured error rates to correct with)
        point = decisions.mean(axis=0)
        replicates = _resampled_means(decisions.astype(float), rng, resamples)
    low, high = np.quantile(replicates, [alpha, 1 - alpha], axis=0)
    return point, np.minimum(low, point), np.maximum(high, point)


def group_errors(Y: np.ndarray, P: np.ndarray, decisions: np.ndarray, groups: np.ndarray,
                 rates_per_row: list[ErrorRates] | None, min_size: int = 50) -> dict[str, Any]:
    """Mean absolute error of each estimator's share over groups of held-out docs (CV folds x kind x
    community), macro over themes, plus per theme the spread of the mean probability's group error beyond
    the labels' own chance variation (the classifier term of its interval)."""
    errors: dict[str, list[np.ndarray]] = {"classify-count": [], ACC: [], PCC: []}
    pcc_residuals, excess = [], []
    per_group: dict[str, dict[str, float]] = {}
    for group in np.unique(groups):
        rows = groups == group
        if rows.sum() < min_size:
            continue
        truth = Y[rows].mean(axis=0)
        share = decisions[rows].mean(axis=0)
        errors["classify-count"].append(np.abs(share - truth))
        if rates_per_row is not None:
            rates = rates_per_row[int(np.flatnonzero(rows)[0])]
            errors[ACC].append(np.abs(adjusted_count(share, rates.tpr, rates.fpr) - truth))
        pcc_residuals.append(truth - P[rows].mean(axis=0))
        errors[PCC].append(np.abs(pcc_residuals[-1]))
        # a calibrated model still misses a group's share by its labels' own chance variation,
        # sum p (1 - p) / n^2: only the excess over that is the classifier's error
        chance = (P[rows] * (1 - P[rows])).sum(axis=0) / rows.sum() ** 2
        excess.append(pcc_residuals[-1] ** 2 - chance)
        per_group[str(group)] = {name: round(float(values[-1].mean()), 4) for name, values in errors.items() if values}
        per_group[str(group)]["size"] = int(rows.sum())
    out: dict[str, Any] = {name: round(float(np.mean(values)), 4) for name, values in errors.items() if values}
    out["max"] = {name: round(float(np.max(values)), 4) for name, values in errors.items() if values}
    out["groups"] = len(pcc_residuals)
    out["pcc_bias_sd"] = np.sqrt(np.maximum(np.mean(excess, axis=0), 0.0)).round(4).tolist() if excess else None
    out["sizes"] = [int((groups == g).sum()) for g in np.unique(groups) if (groups == g).sum() >= min_size]
    out["per_group"] = per_group
    return out


def choose_method(errors: dict[str, Any], configured: str = "auto") -> str:
    if configured != "auto":
        return configured
    measured = {m: errors[m] for m in METHODS if m in errors}
    return min(measured, key=measured.get) if measured else PCC
