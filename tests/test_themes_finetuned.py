"""``themes.minilm_finetuned.v1`` on a small slice of the shared labels (short sequences, one epoch, so it
stays fast on two cores): cached by codebook + labels + settings, identical weights and predictions from the
same inputs, no retraining on a rerun, calibrated through the Platt path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from edumine.models.themes.classifier import ThemesConfig, load_or_train
from edumine.models.themes.codebook import load_codebook
from edumine.models.themes.data import label_matrix, label_texts, load_labels
from edumine.models.themes.estimators import make_estimator

CODEBOOK = SHARED / "codebook" / "sdl_themes.yaml"
LABELS = SHARED / "labels" / "sdl_train.jsonl"
FAST = {"epochs": 1, "max_seq_length": 32, "batch_size": 8, "codebook_weight": 0.0, "probe_steps": 20}
TEXTS = ["Any advice for my first interview for a teaching job?", "Free fraction worksheets I made, enjoy"]


@pytest.fixture(scope="module")
def small_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 80th labelled text (33 rows: posts and comments, most themes)."""
    rows = [line for i, line in enumerate(LABELS.read_text().splitlines()) if i % 80 == 0]
    path = tmp_path_factory.mktemp("labels") / "small.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_same_inputs_give_identical_weights_and_a_refit_reads_the_cache(small_labels: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    codebook = load_codebook(CODEBOOK)
    records = load_labels([small_labels], codebook)
    texts, Y = label_texts(records), label_matrix(records, codebook.ids)
    a = make_estimator("themes.minilm_finetuned.v1", codebook, FAST, cache_dir=str(tmp_path / "a")).fit(texts, Y)
    b = make_estimator("themes.minilm_finetuned.v1", codebook, FAST, cache_dir=str(tmp_path / "b")).fit(texts, Y)
    assert a.top_.keys() == b.top_.keys() and all(np.array_equal(a.top_[k], b.top_[k]) for k in a.top_)
    assert np.array_equal(a.predict_proba(TEXTS), b.predict_proba(TEXTS))
    base = make_estimator("themes.minilm_finetuned.v1", codebook, {**FAST, "epochs": 0, "tfidf_weight": 0.0},
                          cache_dir=str(tmp_path / "a")).fit(texts, Y)
    assert not np.array_equal(base.predict_proba(TEXTS), make_estimator(
        "themes.minilm_finetuned.v1", codebook, {**FAST, "tfidf_weight": 0.0}, cache_dir=str(tmp_path / "a"))
        .fit(texts, Y).predict_proba(TEXTS))                 # tuning changed the encoder's scores
    assert len(list((tmp_path / "a" / "finetune").glob("*.npz"))) == 1

    import edumine.models.themes.finetune as finetune

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrained although the same fit is cached")

    monkeypatch.setattr(finetune, "train_top", no_training)
    again = make_estimator("themes.minilm_finetuned.v1", codebook, FAST, cache_dir=str(tmp_path / "a")).fit(texts, Y)
    assert np.array_equal(again.predict_proba(TEXTS), a.predict_proba(TEXTS))
    with pytest.raises(AssertionError, match="retrained"):   # other labels: a new fit
        make_estimator("themes.minilm_finetuned.v1", codebook, FAST, cache_dir=str(tmp_path / "a")).fit(
            texts, np.roll(Y, 1, axis=0))


@pytest.mark.slow  # six fine-tunes (two models x three fits): minutes on the shared cores
def test_the_theme_model_is_calibrated_cached_and_identical_when_trained_twice(small_labels: Path,
                                                                                tmp_path: Path) -> None:
    def settings(folder: Path) -> ThemesConfig:
        return ThemesConfig(codebook=CODEBOOK, labels=[small_labels], imported_labels=folder / "imported.jsonl",
                            classifier="themes.minilm_finetuned.v1", params=FAST, eval_folds=0,
                            threshold_folds=2, model_dir=folder / "models", cache_dir=folder / "cache")

    model, folder, trained = load_or_train(settings(tmp_path / "a"))
    assert trained and model.calibrated and folder.name.startswith("themes.minilm_finetuned.v1-")
    P = model.predict_proba(TEXTS)
    assert P.shape == (2, len(model.theme_ids)) and ((P >= 0) & (P <= 1)).all()
    again, folder_again, trained_again = load_or_train(settings(tmp_path / "a"))
    assert not trained_again and folder_again == folder
    assert np.array_equal(again.predict_proba(TEXTS), P)
    other, other_folder, trained_other = load_or_train(settings(tmp_path / "b"))
    assert trained_other and other_folder.name == folder.name
    assert np.array_equal(other.predict_proba(TEXTS), P) and np.array_equal(other.thresholds_, model.thresholds_)
    assert json.dumps(other.info["thresholds"]) == json.dumps(model.info["thresholds"])
