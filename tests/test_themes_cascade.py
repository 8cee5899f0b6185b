"""``themes.cascade.v1``: the static model scores every text, the default MiniLM model rescores the texts whose
fast calibrated score is within a band (log-odds) of a theme's threshold. Real sub-models (static MiniLM from
``data/test-models/static``, int8 ONNX MiniLM from ``data/test-models/onnx``) on a small slice of the labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from edumine import registry
from edumine.models.themes.classifier import ThemesConfig, load_or_train
from edumine.models.themes.codebook import load_codebook
from edumine.models.themes.data import label_matrix, label_texts, load_labels
from edumine.models.themes.estimators import make_estimator
from edumine.models.themes.labelling import uncertainty

CODEBOOK = SHARED / "codebook" / "sdl_themes.yaml"
LABELS = SHARED / "labels" / "sdl_train.jsonl"
NAME = "themes.cascade.v1"
TEXTS = ["Any advice for my first interview for a teaching job?", "Free fraction worksheets I made, enjoy",
         "My principal cut our planning time again and I am exhausted. Is it like this everywhere?",
         "I tried exit tickets this week and the kids actually reflected on what they learned.", ""]


@pytest.fixture(scope="module")
def small_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 20th labelled text (132 rows: posts and comments, every theme but the rarest)."""
    rows = [line for i, line in enumerate(LABELS.read_text().splitlines()) if i % 20 == 0]
    path = tmp_path_factory.mktemp("labels") / "small.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def training(small_labels: Path) -> tuple:
    codebook = load_codebook(CODEBOOK)
    records = load_labels([small_labels], codebook)
    return codebook, label_texts(records), label_matrix(records, codebook.ids)


def aligned(P: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Log-odds shifted so that each theme's threshold sits at 0.5."""
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731
    return 1 / (1 + np.exp(-(logit(P) - logit(thresholds))))


def test_uncertain_texts_take_the_slow_models_probabilities(training: tuple, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    codebook, texts, Y = training
    params = {"defer_share": 0.3, "inner_folds": 2, "align_thresholds": True}
    cascade = make_estimator(NAME, codebook, params, cache_dir=str(tmp_path)).fit(texts, Y)
    # the band defers the asked share of the fast model's out-of-fold scores (ties aside)
    assert abs(cascade.train_deferred_share_ - 0.3) <= 2 / len(texts) and cascade.band_ > 0
    probe = texts[:40] + TEXTS
    fast, slow = cascade.fast_.predict_proba(probe), cascade.slow_.predict_proba(probe)
    assert cascade.fast_.calibrated and cascade.slow_.calibrated
    assert cascade.defer_themes_.all()     # default defer_on: every theme's closeness counts
    distance, _ = uncertainty(fast, cascade.fast_.thresholds_)
    deferred = cascade.deferred(probe)
    assert np.array_equal(deferred, distance < cascade.band_) and 0 < deferred.sum() < len(probe)
    P = cascade.predict_proba(probe)
    fast_aligned, slow_aligned = aligned(fast, cascade.fast_.thresholds_), aligned(slow, cascade.slow_.thresholds_)
    assert np.allclose(P[deferred], slow_aligned[deferred]) and np.allclose(P[~deferred], fast_aligned[~deferred])
    assert not np.allclose(fast_aligned[deferred], slow_aligned[deferred])
    # aligned, a cut at 0.5 is each source's own decision: the slow model's for deferred texts, else the fast one's
    decisions = np.where(deferred[:, None], cascade.slow_.decide(slow), cascade.fast_.decide(fast))
    assert np.array_equal(P >= 0.5, decisions.astype(bool))
    unaligned = make_estimator(NAME, codebook, {**params, "align_thresholds": False}, cache_dir=str(tmp_path))
    P_raw = unaligned.fit(texts, Y).predict_proba(probe)
    assert np.array_equal(P_raw[deferred], slow[deferred]) and np.array_equal(P_raw[~deferred], fast[~deferred])

    # the extremes: nothing deferred is the fast model, everything deferred the slow one; a setting that differs
    # only in the band reuses the fitted sub-models (a fit is a pure function of its inputs)
    from edumine.models.themes.classifier import ThemeModel

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("a sub-model was fitted again")

    monkeypatch.setattr(ThemeModel, "fit_out_of_fold", no_fit)
    none = make_estimator(NAME, codebook, {**params, "defer_share": 0.0}, cache_dir=str(tmp_path)).fit(texts, Y)
    every = make_estimator(NAME, codebook, {**params, "band": 1e6}, cache_dir=str(tmp_path)).fit(texts, Y)
    assert np.array_equal(none.fast_.thresholds_, cascade.fast_.thresholds_)
    assert np.allclose(none.predict_proba(probe), fast_aligned)
    assert np.allclose(every.predict_proba(probe), slow_aligned)
    assert none.train_deferred_share_ == 0.0 and every.train_deferred_share_ == 1.0
    # defer_on slow_better: only the themes where the slow model's out-of-fold F1 is higher count
    better = make_estimator(NAME, codebook, {**params, "defer_on": "slow_better"}, cache_dir=str(tmp_path))
    better.fit(texts, Y)
    themes = better.defer_themes_
    assert themes.dtype == bool and 0 < themes.sum() <= len(themes)
    distance = uncertainty(fast[:, themes], cascade.fast_.thresholds_[themes])[0]
    assert np.array_equal(better.deferred(probe), distance < better.band_)


def test_the_params_model_rejects_bad_settings() -> None:
    check = registry.theme_classifiers.check
    assert check(NAME, {"defer_share": 0.2, "band": 0.5, "fast_params": {"C": 2.0}}, "c", "p") == []
    problems = dict(check(NAME, {"defer_share": 1.5, "bandd": 1}, "c", "p"))
    assert "p.defer_share" in problems and "band" in problems["p.bandd"]


@pytest.mark.slow  # nested CV of a cascade: ~80 sub-model fits (25 s idle, two minutes at load ~5)
def test_the_cascade_model_is_calibrated_deterministic_and_not_retrained(small_labels: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def settings(folder: Path) -> ThemesConfig:
        return ThemesConfig(codebook=CODEBOOK, labels=[small_labels], imported_labels=folder / "imported.jsonl",
                            classifier=NAME, params={"inner_folds": 2, "defer_share": 0.3}, eval_folds=2,
                            threshold_folds=2, model_dir=folder / "models", cache_dir=folder / "cache")

    from edumine.models.themes import cascade

    cascade._FITS.clear()   # the second training below must fit its sub-models itself, not reuse these
    model, folder, trained = load_or_train(settings(tmp_path / "a"))
    cascade._FITS.clear()
    assert trained and model.calibrated and folder.name.startswith(NAME + "-")
    report = model.info["evaluation"]["calibration"]          # the card's Brier/ECE: the cascade's own output
    assert 0 < report["brier_mean"] < 0.25 and 0 <= report["ece_mean"] < 0.2
    assert (folder / "model_card.md").is_file()
    P = model.predict_proba(TEXTS)
    assert P.shape == (len(TEXTS), len(model.theme_ids)) and ((P >= 0) & (P <= 1)).all()
    other, other_folder, trained_other = load_or_train(settings(tmp_path / "b"))   # the same inputs, fitted again
    assert trained_other and other_folder.name == folder.name
    assert np.array_equal(other.predict_proba(TEXTS), P) and np.array_equal(other.thresholds_, model.thresholds_)
    assert other.estimator_.band_ == model.estimator_.band_

    import edumine.models.themes.classifier as classifier

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrained although the model is cached")

    monkeypatch.setattr(classifier, "train", no_training)
    again, folder_again, trained_again = load_or_train(settings(tmp_path / "a"))
    assert not trained_again and folder_again == folder
    assert again.estimator_.slow_.cache_dir == str(tmp_path / "a" / "cache")   # the run's cache reaches the sub-models
    assert np.array_equal(again.predict_proba(TEXTS), P)
    with pytest.raises(AssertionError, match="retrained"):                      # new settings: a new model
        load_or_train(settings(tmp_path / "a").model_copy(update={"params": {"inner_folds": 2, "defer_share": 0.2}}))
