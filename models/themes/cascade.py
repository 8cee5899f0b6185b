"""``themes.cascade.v1``: a fast theme model scores every text; only the texts it is unsure about are scored
again by a slow, more accurate one, whose probabilities replace the fast ones for those texts.

Both sub-models are trained as ``ThemeModel``s (the same code as any theme model: out-of-fold scores over
``inner_folds`` folds fit a per-theme calibration and thresholds, then the estimator is refitted on
everything), so each outputs calibrated probabilities and has its own thresholds. A text is **deferred**
when, for some theme, the fast model's calibrated probability is within ``band`` (in log-odds) of the fast
model's threshold for that theme: the distance ``edumine themes export-for-labelling`` ranks posts by (with
``defer_on: slow_better``, only themes where the slow model's out-of-fold F1 beats the fast model's count;
measured no better than all themes, the default). With ``band`` unset, it is the quantile of those distances
over the fast model's out-of-fold scores that defers ``defer_share`` of the training texts. Log-odds rather
than a band of probability: a theme with a threshold of 0.1 and one of 0.6 get comparable bands, and confident
scores near 0 or 1 are never deferred.

With ``align_thresholds``, each source's log-odds are shifted so that its own thresholds sit at 0.5 (the two
models' thresholds for a theme differ, and one cut on the mixture applies a compromise to both); measured in
nested CV it changes macro-F1 by less than the noise and calibrates slightly worse, so it is off by default.
What the cascade outputs is a mixture of two calibrated sources, so a ``ThemeModel`` around it calibrates and
thresholds the cascade's **own** out-of-fold output again (Platt, per theme), and the model card's Brier/ECE
are measured on that output, as for every classifier.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edumine.estimator import Estimator
from edumine.models.themes.codebook import Codebook
from edumine.models.themes.estimators import classifiers

FAST = "themes.tfidf_static_logreg.v1"
SLOW = "themes.tfidf_minilm_logreg.v1"


class CascadeParams(BaseModel):
    """``themes.params`` of ``themes.cascade.v1``."""

    model_config = ConfigDict(extra="forbid")

    fast: str = Field(FAST, description="registry name of the model that scores every text")
    fast_params: Optional[dict[str, Any]] = Field(None, description="its keyword parameters")
    slow: str = Field(SLOW, description="registry name of the model that rescores the deferred texts")
    slow_params: Optional[dict[str, Any]] = Field(None, description="its keyword parameters")
    defer_share: float = Field(0.25, ge=0, le=1, description="share of training texts (out-of-fold) to defer; "
                               "sets the band when band is unset")
    band: Optional[float] = Field(None, ge=0, description="defer a text when a theme's fast calibrated "
                                  "probability is within this many log-odds of its threshold")
    defer_on: Literal["all", "slow_better"] = Field(
        "all", description="themes whose closeness to the threshold defers a text: all, or those where the "
        "slow model's out-of-fold F1 beats the fast one's")
    align_thresholds: bool = Field(False, description="shift each sub-model's log-odds so that its own threshold "
                                   "sits at 0.5 (the cascade is calibrated again on its output)")
    inner_folds: int = Field(3, ge=2, description="folds whose out-of-fold scores calibrate each sub-model")
    calibration: Literal["platt", "isotonic"] = "platt"
    max_predicted_ratio: float = Field(3.0, ge=0)


_FITS: OrderedDict[str, tuple[Any, np.ndarray]] = OrderedDict()
_FITS_KEPT = 128  # a nested CV of one cascade holds 60 (5 outer x 6 fits x 2 models)


@classifiers.register("themes.cascade.v1")
class Cascade(Estimator):
    """The fast model's calibrated probabilities, replaced by the slow model's for the texts whose fast
    score is within ``band`` log-odds of a theme's threshold (``defer_share`` of training texts when unset)."""

    Params = CascadeParams

    def __init__(self, codebook: Codebook | None = None, fast: str = FAST, fast_params: dict[str, Any] | None = None,
                 slow: str = SLOW, slow_params: dict[str, Any] | None = None, defer_share: float = 0.25,
                 band: float | None = None, defer_on: str = "all", align_thresholds: bool = False,
                 inner_folds: int = 3, calibration: str = "platt",
                 max_predicted_ratio: float = 3.0, cache_dir: str | None = None, seed: int = 0) -> None:
        self.codebook = codebook
        self.fast = fast
        self.fast_params = fast_params
        self.slow = slow
        self.slow_params = slow_params
        self.defer_share = defer_share
        self.band = band
        self.defer_on = defer_on
        self.align_thresholds = align_thresholds
        self.inner_folds = inner_folds
        self.calibration = calibration
        self.max_predicted_ratio = max_predicted_ratio
        self.cache_dir = cache_dir
        self.seed = seed

    def fit(self, texts: Sequence[str], Y: np.ndarray) -> Cascade:
        if self.codebook is None:
            raise ValueError("themes.cascade.v1 needs the codebook")
        texts, Y = list(texts), np.asarray(Y)
        self.fast_, fast_scores = self._sub_model(self.fast, self.fast_params, texts, Y)
        self.slow_, slow_scores = self._sub_model(self.slow, self.slow_params, texts, Y)
        self.defer_themes_ = self._themes_to_defer_on(Y, fast_scores, slow_scores)
        if self.band is not None:
            self.band_ = float(self.band)
        else:
            distance = self._distance(fast_scores)
            self.band_ = float(np.quantile(distance, self.defer_share)) if self.defer_share > 0 else -1.0
        self.train_deferred_share_ = float(np.mean(self._distance(fast_scores) < self.band_))
        return self

    def _sub_model(self, name: str, params: dict[str, Any] | None, texts: list[str],
                   Y: np.ndarray) -> tuple[Any, np.ndarray]:
        """A fitted ``ThemeModel`` and its out-of-fold calibrated scores. A fit is a pure function of its
        inputs (seeded; the text cache included), so the last few are kept in memory: cascades that differ
        only in the band (a benchmark's settings) share their sub-models instead of fitting them again."""
        from edumine.models.themes.classifier import ThemeModel

        key = self._fit_key(name, params, texts, Y)
        if key in _FITS:
            _FITS.move_to_end(key)
            model, scores = copy.deepcopy(_FITS[key])  # a copy: no two cascades share a mutable sub-model
            return model, scores
        model = ThemeModel(self.codebook, name, params or {}, seed=self.seed, cache_dir=self.cache_dir)
        scores = model.fit_out_of_fold(texts, Y, threshold_folds=self.inner_folds,
                                       max_predicted_ratio=self.max_predicted_ratio, calibration=self.calibration)
        _FITS[key] = copy.deepcopy((model, scores))
        while len(_FITS) > _FITS_KEPT:
            _FITS.popitem(last=False)
        return model, scores

    def _fit_key(self, name: str, params: dict[str, Any] | None, texts: list[str], Y: np.ndarray) -> str:
        settings = {"name": name, "params": params or {}, "seed": self.seed, "folds": self.inner_folds,
                    "cache_dir": str(self.cache_dir),  # int8 vectors cached elsewhere may differ in the last bits
                    "calibration": self.calibration, "ratio": self.max_predicted_ratio,
                    "codebook": self.codebook.fingerprint()}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
        for text in texts:
            digest.update(hashlib.sha1(text.encode("utf-8")).digest())
        digest.update(np.ascontiguousarray(Y, dtype=np.int8).tobytes())
        return digest.hexdigest()

    def _themes_to_defer_on(self, Y: np.ndarray, fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
        """Which themes' closeness to the threshold defers a text. With ``slow_better``, only themes where the
        slow model's out-of-fold decisions score a higher F1 than the fast model's: the deferral budget goes
        where rescoring can change a decision for the better (all themes when there is none)."""
        every = np.ones(Y.shape[1], dtype=bool)
        if self.defer_on == "all":
            return every
        from edumine.models.themes.evaluation import f1_scores

        fast_on, slow_on = fast >= self.fast_.thresholds_, slow >= self.slow_.thresholds_
        better = np.array([f1_scores(Y[:, t], slow_on[:, t].astype(int))[2]
                           > f1_scores(Y[:, t], fast_on[:, t].astype(int))[2] for t in range(Y.shape[1])])
        return better if better.any() else every

    def _distance(self, P: np.ndarray) -> np.ndarray:
        from edumine.models.themes.labelling import uncertainty

        themes = self.defer_themes_
        return uncertainty(P[:, themes], self.fast_.thresholds_[themes])[0] if len(P) else np.zeros(0)

    def deferred(self, texts: Sequence[str]) -> np.ndarray:
        """Which of ``texts`` the slow model scores (boolean per text)."""
        return self._distance(self.fast_.predict_proba(list(texts))) < self.band_

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = self.fast_.predict_proba(texts)
        if not texts:
            return out
        defer = np.flatnonzero(self._distance(out) < self.band_)
        if self.align_thresholds:
            out = _aligned(out, self.fast_.thresholds_)
        if len(defer):
            slow = self.slow_.predict_proba([texts[i] for i in defer])
            out[defer] = _aligned(slow, self.slow_.thresholds_) if self.align_thresholds else slow
        return out


def _aligned(P: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Probabilities whose log-odds are shifted so that ``thresholds`` map to 0.5: one threshold per theme on the
    cascade's output then applies each source's own threshold to its texts (the fast and slow thresholds of a
    theme differ, and a single cut on the raw mixture would misplace one of them)."""
    from edumine.models.themes.labelling import _logit

    return 1.0 / (1.0 + np.exp(-(_logit(P) - _logit(np.clip(thresholds, 0.0, 1.0)))))
