"""The SDL theme model: a registry-named multi-label estimator plus per-theme thresholds, trained on the
shared labels and any imported ones, cached by what it was trained on, and described by a model card.

``load_or_train(settings)`` is what the pipeline stage and the ``edumine themes`` commands call: it
hashes the codebook, the labelled posts and the settings; an existing model under
``<model_dir>/<classifier>-<hash>/`` is loaded, otherwise one is trained (thresholds tuned on inner
cross-validation, quality measured by nested cross-validation) and saved with ``model_card.md`` and
``metrics.json`` beside it. Importing new labels changes the hash, so the next run retrains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from edumine.errors import EdumineError
from edumine.integrity import SEAL, CorruptArtefact, seal, verify
from edumine.migrations import load_pickle
from edumine.models.themes.codebook import Codebook, load_codebook
from edumine.models.themes.config import DEFAULT_CLASSIFIER, ThemesConfig
from edumine.models.themes import zeroshot  # noqa: F401  (registers themes.zeroshot.v2)
from edumine.models.themes.calibration import ACC, ZERO_SHOT, PrevalenceModel, choose_method
from edumine.models.themes.data import label_matrix, label_texts, labels_fingerprint, load_labels
from edumine.models.themes.estimators import classifiers, make_estimator
from edumine.models.themes.evaluation import cross_validate, decision_layer, out_of_fold

log = logging.getLogger(__name__)

MODEL_FORMAT = 2
ZERO_SHOT_CLASSIFIER = "themes.zeroshot.v2"
__all__ = ["DEFAULT_CLASSIFIER", "ThemeModel", "ThemesConfig", "load_or_train", "predict_records"]


class ThemeModel:
    """A fitted estimator, the codebook it predicts, and a decision threshold per theme."""

    def __init__(self, codebook: Codebook, classifier: str, params: dict[str, Any], *, seed: int = 0,
                 cache_dir: str | None = None) -> None:
        self.codebook = codebook
        self.classifier = classifier
        self.params = dict(params)
        self.seed = seed
        self.cache_dir = cache_dir
        self.info: dict[str, Any] = {}

    @property
    def theme_ids(self) -> list[str]:
        return self.codebook.ids

    def new_estimator(self) -> Any:
        return make_estimator(self.classifier, self.codebook, self.params, cache_dir=self.cache_dir, seed=self.seed)

    def fit(self, texts: Sequence[str], Y: np.ndarray, *, threshold_folds: int = 5,
            max_predicted_ratio: float = 3.0, calibration: str | None = "platt") -> ThemeModel:
        """Out-of-fold scores of the training set fit the per-theme calibration, then the thresholds (on
        the calibrated scale) and the decisions' error rates; the estimator is refitted on everything."""
        self.fit_out_of_fold(texts, Y, threshold_folds=threshold_folds, max_predicted_ratio=max_predicted_ratio,
                             calibration=calibration)
        return self

    def fit_out_of_fold(self, texts: Sequence[str], Y: np.ndarray, *, threshold_folds: int = 5,
                        max_predicted_ratio: float = 3.0, calibration: str | None = "platt") -> np.ndarray:
        """``fit``, returning the training set's out-of-fold scores on the calibrated scale (what the
        thresholds were tuned on; ``themes.cascade.v1`` sets its deferral band on them)."""
        texts = list(texts)
        inner = out_of_fold(self.new_estimator, texts, Y, threshold_folds, self.seed)
        self.calibrator_, self.thresholds_, self.error_rates_ = decision_layer(
            Y, inner, calibration=calibration, max_predicted_ratio=max_predicted_ratio)
        self.estimator_ = self.new_estimator().fit(texts, Y)
        return self.calibrator_.transform(inner) if self.calibrated else inner

    @property
    def calibrated(self) -> bool:
        """Whether ``predict_proba`` returns calibrated probabilities (otherwise they are only scores)."""
        return getattr(self, "calibrator_", None) is not None

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.theme_ids)))
        raw = np.clip(self.estimator_.predict_proba(texts), 0.0, 1.0)
        return self.calibrator_.transform(raw) if self.calibrated else raw

    def use_cache_dir(self, cache_dir: str) -> None:
        """Point the model and its (nested) estimators at this run's text-vector cache: a pickled model
        keeps the folder it was trained with, which need not be this run's."""
        self.cache_dir = cache_dir
        pending = [getattr(self, "estimator_", None)]
        while pending:
            estimator = pending.pop()
            if estimator is None or not hasattr(estimator, "get_params"):
                continue
            if hasattr(estimator, "cache_dir"):
                estimator.cache_dir = cache_dir
            for name, value in vars(estimator).items():
                if name.endswith("_") and isinstance(value, ThemeModel):  # a cascade's fitted sub-models
                    value.cache_dir = cache_dir
                    value = getattr(value, "estimator_", None)
                if name.endswith("_") and hasattr(value, "get_params"):
                    pending.append(value)

    def embedding_spec(self) -> tuple[str, dict[str, Any], str | None] | None:
        """(backend name, parameters, text cache folder) of a model on an embedding backend, else None."""
        estimator = getattr(self, "estimator_", None)
        if estimator is None or not hasattr(estimator, "embedding_spec"):
            return None
        name, params = estimator.embedding_spec()
        return name, params, estimator.cache_dir

    def prevalence_model(self, method: str = "auto") -> PrevalenceModel:
        """The quantification estimator for ``theme_prevalence``: ``method`` or, for auto, the one this
        model's cross-validation measured best (adjusted counts when it is not calibrated)."""
        if self.info.get("zero_shot"):
            return PrevalenceModel(method=ZERO_SHOT)
        if method == "auto":
            method = self.info.get("prevalence_method", ACC)
        if method != ACC and not self.calibrated:
            method = ACC
        errors = (self.info.get("evaluation") or {}).get("prevalence_errors") or {}
        sd = errors.get("pcc_bias_sd")
        return PrevalenceModel(method=method, rates=getattr(self, "error_rates_", None),
                               pcc_bias_sd=None if sd is None else np.asarray(sd, dtype=float),
                               group_errors={k: v for k, v in errors.items() if isinstance(v, float)})

    def decide(self, P: np.ndarray) -> np.ndarray:
        return (P >= self.thresholds_).astype(np.int8)

    def themes_of(self, P: np.ndarray) -> list[list[str]]:
        decisions = self.decide(P)
        return [[t for t, on in zip(self.theme_ids, row) if on] for row in decisions]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as handle:
            pickle.dump({"format": MODEL_FORMAT, "model": self}, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, folder / "model.pkl")

    @staticmethod
    def load(folder: Path) -> ThemeModel:
        with open(folder / "model.pkl", "rb") as handle:
            data = load_pickle(handle)  # our own artefact, written by save(), maybe by an older edumine
        if data.get("format") != MODEL_FORMAT:
            raise EdumineError(f"theme model {folder} has format {data.get('format')}, expected {MODEL_FORMAT}; "
                               "delete the folder to retrain")
        return data["model"]


def training_set(settings: ThemesConfig, codebook: Codebook) -> list[dict]:
    """Shipped labels, then imported ones (a key labelled again by a person overrides the shipped label)."""
    paths = [*settings.labels, settings.imported_labels]
    return load_labels(paths, codebook, missing_ok=[settings.imported_labels])


def model_key(settings: ThemesConfig, codebook: Codebook, records: Sequence[dict]) -> str:
    parts = {"format": MODEL_FORMAT, "classifier": settings.classifier, "params": settings.params,
             "seed": settings.seed, "threshold_folds": settings.threshold_folds, "eval_folds": settings.eval_folds,
             "max_predicted_ratio": settings.max_predicted_ratio, "calibration": settings.calibration,
             "codebook": codebook.fingerprint(), "labels": labels_fingerprint(records)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_or_train(settings: ThemesConfig, *, retrain: bool = False) -> tuple[ThemeModel, Path, bool]:
    """The model for these settings and labels: (model, its folder, whether it was trained now)."""
    settings = settings.resolved()
    classifiers.get(settings.classifier)  # fail early on an unknown name
    codebook = load_codebook(settings.codebook)
    records = training_set(settings, codebook)
    if not records and settings.classifier != ZERO_SHOT_CLASSIFIER:
        log.warning("no theme labels: zero-shot themes from the codebook text (%s); label posts with "
                    "`edumine themes export-for-labelling` / `import-labels` to train a classifier", ZERO_SHOT_CLASSIFIER)
        settings = settings.model_copy(update={"classifier": ZERO_SHOT_CLASSIFIER, "params": {}})
    folder = settings.model_dir / f"{settings.classifier}-{model_key(settings, codebook, records)}"
    if not retrain and ((folder / "model.pkl").is_file() or (folder / SEAL).is_file()):
        model = load_verified(folder)
        model.use_cache_dir(str(settings.cache_dir))
        _point_latest(settings.model_dir, folder)
        return model, folder, False
    model = train(settings, codebook, records)
    model.info["folder"] = str(folder)
    model.save(folder)
    from edumine.models.themes.card import write_model_card

    write_model_card(model, folder)
    seal(folder)
    _point_latest(settings.model_dir, folder)
    return model, folder, True


def load_verified(folder: Path) -> ThemeModel:
    """A saved model whose checksums hold (``edumine/integrity.py``); a damaged one raises ``CorruptArtefact``
    (the pipeline's runner removes the folder and the stage trains the model again from its labels)."""
    verify(folder, "the theme model")
    try:
        return ThemeModel.load(folder)
    except EdumineError:
        raise
    except Exception as exc:  # noqa: BLE001  (unpickling a damaged file raises almost anything)
        raise CorruptArtefact("the theme model", folder, f"model.pkl cannot be loaded ({type(exc).__name__})") from None


def train_zero_shot(settings: ThemesConfig, codebook: Codebook, records: Sequence[dict]) -> ThemeModel:
    """A model from the codebook text alone: not calibrated, no error rates, every theme unreliable."""
    model = ThemeModel(codebook, ZERO_SHOT_CLASSIFIER, settings.params, seed=settings.seed,
                       cache_dir=str(settings.cache_dir))
    started = time.perf_counter()
    model.estimator_ = model.new_estimator().fit([], None)
    model.calibrator_, model.error_rates_ = None, None
    model.thresholds_ = np.full(len(codebook.ids), 0.5)
    model.info = {
        "trained_at": datetime.now().astimezone().isoformat(timespec="seconds"), "zero_shot": True,
        "classifier": ZERO_SHOT_CLASSIFIER, "params": settings.params, "seed": settings.seed,
        "codebook": str(settings.codebook), "codebook_fingerprint": codebook.fingerprint(),
        "label_files": [str(p) for p in settings.labels] + [str(settings.imported_labels)],
        "labels_fingerprint": labels_fingerprint(records), "n_labelled": len(records), "n_imported": 0,
        "n_no_theme": 0, "supports": {t: 0 for t in codebook.ids}, "calibration": "none",
        "thresholds": dict(zip(codebook.ids, model.thresholds_.tolist())), "prevalence_method": ZERO_SHOT,
        "evaluation": None, "eval_seconds": 0.0, "train_seconds": round(time.perf_counter() - started, 1)}
    return model


def train(settings: ThemesConfig, codebook: Codebook, records: Sequence[dict]) -> ThemeModel:
    if settings.classifier == ZERO_SHOT_CLASSIFIER:
        return train_zero_shot(settings, codebook, records)
    if len(records) < 2 * settings.threshold_folds:
        raise EdumineError(f"only {len(records)} labelled post(s): at least {2 * settings.threshold_folds} are needed "
                           "to tune thresholds; add labels (edumine themes import-labels FILE)")
    texts = label_texts(records)
    Y = label_matrix(records, codebook.ids)
    model = ThemeModel(codebook, settings.classifier, settings.params, seed=settings.seed,
                       cache_dir=str(settings.cache_dir))
    calibration = None if settings.calibration == "none" else settings.calibration
    started = time.perf_counter()
    evaluation = None
    if settings.eval_folds:
        evaluation = cross_validate(model.new_estimator, texts, Y, codebook.ids, n_splits=settings.eval_folds,
                                    inner_splits=settings.threshold_folds, seed=settings.seed,
                                    max_predicted_ratio=settings.max_predicted_ratio, calibration=calibration,
                                    groups=[f"{r.get('kind', 'post')}:{r.get('subreddit', '')}" for r in records])
    eval_seconds = time.perf_counter() - started
    model.fit(texts, Y, threshold_folds=settings.threshold_folds, max_predicted_ratio=settings.max_predicted_ratio,
              calibration=calibration)
    supports = dict(zip(codebook.ids, Y.sum(axis=0).astype(int).tolist()))
    model.info = {
        "trained_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "classifier": settings.classifier, "params": settings.params, "seed": settings.seed,
        "codebook": str(settings.codebook), "codebook_fingerprint": codebook.fingerprint(),
        "label_files": [str(p) for p in settings.labels] + [str(settings.imported_labels)],
        "labels_fingerprint": labels_fingerprint(records), "n_labelled": len(records),
        "n_imported": sum(1 for r in records if r.get("label_file") == settings.imported_labels.name),
        "n_no_theme": int((Y.sum(axis=1) == 0).sum()), "supports": supports,
        "thresholds": dict(zip(codebook.ids, np.round(model.thresholds_, 3).tolist())),
        "calibration": settings.calibration, "reliability_floor": settings.reliability_floor,
        "error_rates": {"tpr": dict(zip(codebook.ids, np.round(model.error_rates_.tpr, 4).tolist())),
                        "fpr": dict(zip(codebook.ids, np.round(model.error_rates_.fpr, 4).tolist()))},
        "prevalence_method": choose_method((evaluation or {}).get("prevalence_errors", {})) if calibration
        else ACC,
        "evaluation": evaluation, "eval_seconds": round(eval_seconds, 1),
        "train_seconds": round(time.perf_counter() - started - eval_seconds, 1),
    }
    if evaluation is not None:
        log.info("theme model %s: nested %d-fold CV macro-F1 %.3f, micro-F1 %.3f", settings.classifier,
                 settings.eval_folds, evaluation["macro_f1"], evaluation["micro_f1"])
    return model


def _point_latest(model_dir: Path, folder: Path) -> None:
    from edumine.manifest import write_json_atomic

    write_json_atomic({"model": folder.name, "path": str(folder)}, model_dir / "latest.json")


def predict_records(model: ThemeModel, texts: Sequence[str], ids: Sequence[Any]) -> list[dict[str, Any]]:
    """Output lines of ``edumine themes predict``: ``{"id", "themes", "scores", "calibrated"}`` per text
    (scores are probabilities only where ``calibrated`` is true)."""
    P = model.predict_proba(texts)
    themes = model.themes_of(P)
    calibrated = model.calibrated
    return [{"id": identifier, "themes": chosen,
             "scores": {t: round(float(p), 4) for t, p in zip(model.theme_ids, row)}, "calibrated": calibrated}
            for identifier, chosen, row in zip(ids, themes, P)]
