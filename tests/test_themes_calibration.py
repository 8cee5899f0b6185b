"""Calibration and prevalence estimators: seeded synthetic scores with a known truth, then the real model on
the shared labels (calibrated output, stored error rates, identical retraining)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from edumine.models.themes.classifier import ThemesConfig, load_or_train
from edumine.models.themes.calibration import (
    ACC,
    PCC,
    ZERO_SHOT,
    Calibrator,
    ErrorRates,
    PrevalenceModel,
    adjusted_count,
    calibration_report,
    choose_method,
    estimate,
)

CODEBOOK = SHARED / "codebook" / "sdl_themes.yaml"
LABELS = SHARED / "labels" / "sdl_train.jsonl"


def overconfident(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of a class-balanced-looking model: true P(y | s) = s ** 3, so raw scores overstate."""
    rng = np.random.default_rng(seed)
    s = rng.beta(2, 2 / share - 2, size=n) ** (1 / 3)
    y = (rng.random(n) < s ** 3).astype(np.int8)
    return y[:, None], s[:, None]


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrated_mean_estimates_the_share_where_raw_scores_overstate_it(method: str) -> None:
    y_fit, s_fit = overconfident(4000, 0.2, seed=1)
    y_new, s_new = overconfident(3000, 0.2, seed=2)
    calibrated = Calibrator(method).fit(y_fit, s_fit).transform(s_new)
    truth = y_new.mean()
    assert s_new.mean() - truth > 0.15                       # raw scores overstate the share
    assert abs(calibrated.mean() - truth) < 0.015
    report = calibration_report(y_new, calibrated, ["a"])
    raw_report = calibration_report(y_new, s_new, ["a"])
    assert report["per_theme"]["a"]["ece"] < 0.03 < raw_report["per_theme"]["a"]["ece"]
    assert report["brier_mean"] < raw_report["brier_mean"]
    assert sum(row["pairs"] for row in report["reliability"]) == len(y_new)


def test_a_theme_never_labelled_calibrates_to_zero() -> None:
    Y = np.zeros((20, 1), dtype=np.int8)
    assert Calibrator("platt").fit(Y, np.linspace(0, 1, 20)[:, None]).transform(np.array([[0.9]]))[0, 0] == 0.0


def test_adjusted_count_recovers_a_shifted_share_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(0)
    tpr, fpr = 0.7, 0.1
    # error rates measured on a labelled set where the theme is 30 %
    y = rng.random(3000) < 0.3
    d = np.where(y, rng.random(3000) < tpr, rng.random(3000) < fpr)
    rates = ErrorRates.measure(y[:, None], d[:, None])
    # a new window where the theme is 8 %: classify-and-count overstates it, the adjusted count does not
    y_new = rng.random(2000) < 0.08
    d_new = np.where(y_new, rng.random(2000) < tpr, rng.random(2000) < fpr)
    share, low, high = estimate(d_new[:, None].astype(float), d_new[:, None], PrevalenceModel(ACC, rates=rates),
                                seed=0)
    assert d_new.mean() - y_new.mean() > 0.05
    assert abs(share[0] - y_new.mean()) < 0.02
    assert low[0] <= y_new.mean() <= high[0]
    # the interval carries the classifier's uncertainty: fewer labelled posts -> wider
    few = ErrorRates.measure(y[:150, None], d[:150, None])
    _, low_few, high_few = estimate(d_new[:, None].astype(float), d_new[:, None], PrevalenceModel(ACC, rates=few),
                                    seed=0)
    assert high_few[0] - low_few[0] > high[0] - low[0]
    assert adjusted_count(np.array([0.05]), np.array([0.7]), np.array([0.1]))[0] == 0.0  # clipped at 0


def test_mean_probability_estimate_and_its_classifier_term() -> None:
    rng = np.random.default_rng(3)
    P = rng.random((500, 2)) * 0.4
    d = P > 0.3
    plain, low, high = estimate(P, d, PrevalenceModel(PCC), seed=1)
    assert plain == pytest.approx(P.mean(axis=0))
    wide = estimate(P, d, PrevalenceModel(PCC, pcc_bias_sd=np.array([0.05, 0.0])), seed=1)
    assert wide[2][0] - wide[1][0] > 2 * (high[0] - low[0])
    assert wide[2][1] - wide[1][1] == pytest.approx(high[1] - low[1], rel=0.3)
    zero = estimate(P, d, PrevalenceModel(ZERO_SHOT), seed=1)
    assert zero[0] == pytest.approx(d.mean(axis=0))
    assert choose_method({ACC: 0.02, PCC: 0.01}) == PCC and choose_method({ACC: 0.02, PCC: 0.03}) == ACC
    assert choose_method({ACC: 0.02, PCC: 0.01}, ACC) == ACC


def test_the_trained_model_is_calibrated_keeps_error_rates_and_retrains_identically(tmp_path: Path) -> None:
    def settings(folder: Path) -> ThemesConfig:
        return ThemesConfig(codebook=CODEBOOK, labels=[LABELS], imported_labels=folder / "imported.jsonl",
                            classifier="themes.tfidf_logreg.v1", params={"ngram_max": 1}, eval_folds=2,
                            threshold_folds=2, model_dir=folder / "models", cache_dir=folder / "cache")

    model, folder, trained = load_or_train(settings(tmp_path / "a"))
    assert trained and model.calibrated
    evaluation = model.info["evaluation"]
    # calibrated out-of-fold probabilities: their mean is each theme's labelled share (Platt keeps it closely)
    for theme, m in evaluation["calibration"]["per_theme"].items():
        assert abs(m["mean_p"] - m["share"]) < 0.02, theme
    errors = evaluation["prevalence_errors"]
    assert errors["groups"] >= 4 and {ACC, PCC, "classify-count"} <= set(errors)
    assert model.info["prevalence_method"] == choose_method(errors)
    assert model.prevalence_model().method == model.info["prevalence_method"]
    card = (folder / "model_card.md").read_text()
    assert "## Calibration" in card and "Brier" in card and "| 0.0-0.1 |" in card and model.info["prevalence_method"] in card
    texts = ["Any advice for my first interview for a teaching job?", "Free fraction worksheets I made, enjoy"]
    again, folder_again, trained_again = load_or_train(settings(tmp_path / "a"))
    assert not trained_again and folder_again == folder
    other, other_folder, _ = load_or_train(settings(tmp_path / "b"))
    assert other_folder.name == folder.name
    assert np.array_equal(other.predict_proba(texts), model.predict_proba(texts))
    assert np.array_equal(other.thresholds_, model.thresholds_)
    assert (folder / "model.pkl").read_bytes() != b"" and other.info["evaluation"] == evaluation

    # `edumine themes train` loads it (no retraining) and flags the themes under the floor
    import json

    import typer
    from typer.testing import CliRunner

    from edumine.themes_cli import themes_app

    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "lake": str(tmp_path / "lake"), "themes": settings(tmp_path / "a").model_dump(mode="json"),
        "sources": [{"kind": "tabular.v1", "name": "unused", "paths": ["unused.csv"], "community": "x",
                     "columns": {"body": "body", "created": "created"}}]}))
    app = typer.Typer()
    app.add_typer(themes_app, name="themes")
    result = CliRunner().invoke(app, ["themes", "train", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "(cached)" in result.output and f"prevalence method {model.prevalence_model().method}" in result.output
    weak = [t for t, m in evaluation["per_theme"].items() if m["f1"] < 0.5]
    assert weak and all(any(t in line and "unreliable" in line for line in result.output.splitlines()) for t in weak)


def test_a_codebook_without_labels_gets_zero_shot_output_marked_as_such(tmp_path: Path) -> None:
    import pandas as pd

    from edumine.models.themes.classifier import predict_records
    from edumine.pipelines.stages.themes import theme_prevalence

    settings = ThemesConfig(codebook=CODEBOOK, labels=[], imported_labels=tmp_path / "imported.jsonl",
                            model_dir=tmp_path / "models", cache_dir=tmp_path / "cache")
    model, folder, trained = load_or_train(settings)
    assert trained and folder.name.startswith("themes.zeroshot.v2-") and not model.calibrated
    card = (folder / "model_card.md").read_text()
    assert "zero-shot" in card and "not probabilities" in card
    texts = ["I got the job! Signed my first teaching contract today, any advice for the interview next time?",
             "Here is a free set of fraction worksheets I made for my class, download them from my drive."]
    lines = predict_records(model, texts, ["a", "b"])
    assert [line["calibrated"] for line in lines] == [False, False]
    # weak (macro-F1 ~0.33 on our labels) but not arbitrary: a job post is career, a worksheet post is resources
    assert "navigate_career" in lines[0]["themes"]
    assert {"share_resources", "request_resources"} & set(lines[1]["themes"])
    assert "navigate_career" not in lines[1]["themes"]
    assert load_or_train(settings)[2] is False  # cached like any model
    doc_themes = pd.DataFrame({"uid": ["a", "b"], "community": ["teaching"] * 2,
                               "created_at": pd.to_datetime(["2018-01-05", "2018-02-01"], utc=True),
                               "themes": [line["themes"] for line in lines],
                               "scores": [list(line["scores"].items()) for line in lines]})
    table = theme_prevalence(doc_themes, model.theme_ids, {}, "semester", prevalence=model.prevalence_model(),
                             f1={}, model_name=folder.name).to_pandas()
    assert set(table["method"]) == {ZERO_SHOT} and not table["reliable"].any()
    row = table[table["theme"] == "navigate_career"].iloc[0]
    assert row["share"] == 0.5 and row["theme_docs"] == 1


def test_large_groups_use_the_normal_limit_of_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    from edumine.models.themes import calibration as themes_calibration

    rng = np.random.default_rng(5)
    P = rng.beta(1, 6, size=(8000, 3))
    fast = estimate(P, P > 0.3, PrevalenceModel(PCC), seed=2)
    monkeypatch.setattr(themes_calibration, "BOOTSTRAP_MAX_DOCS", 10_000)
    exact = estimate(P, P > 0.3, PrevalenceModel(PCC), seed=2)
    assert fast[0] == pytest.approx(exact[0])
    assert fast[2] - fast[1] == pytest.approx(exact[2] - exact[1], rel=0.15)
