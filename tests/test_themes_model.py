"""Theme model pieces on the shared labels: folds, thresholds, metrics, training cache, determinism,
the MiniLM path, and ``edumine themes predict`` over CSV / JSONL / Parquet with raw Reddit text."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from conftest import SHARED
from edumine.models.themes.codebook import load_codebook
from edumine.models.themes.classifier import ThemesConfig, load_or_train
from edumine.models.themes.card import THIN_BELOW
from edumine.models.themes.data import label_key, label_matrix, load_labels, multilabel_folds, read_jsonl
from edumine.models.themes.evaluation import theme_confusion, theme_metrics, tune_thresholds
from edumine.themes_cli import themes_app

CODEBOOK = SHARED / "codebook" / "sdl_themes.yaml"
LABELS = SHARED / "labels" / "sdl_train.jsonl"


@pytest.fixture(scope="module")
def shared_labels() -> tuple:
    codebook = load_codebook(CODEBOOK)
    records = load_labels([LABELS], codebook)
    return codebook, records, label_matrix(records, codebook.ids)


def fast_settings(tmp: Path, **changes: object) -> ThemesConfig:
    """TF-IDF (unigram) model, no nested evaluation: trains in about a second."""
    values = {"codebook": CODEBOOK, "labels": [LABELS], "imported_labels": tmp / "imported.jsonl",
              "classifier": "themes.tfidf_logreg.v1", "params": {"ngram_max": 1}, "eval_folds": 0, "threshold_folds": 2,
              "model_dir": tmp / "models", "cache_dir": tmp / "cache", **changes}
    return ThemesConfig(**values)


def test_shared_labels_keys_and_counts(shared_labels: tuple) -> None:
    codebook, records, Y = shared_labels
    rows = read_jsonl(LABELS)
    # A text posted twice under two ids is one labelled text (one key), the later row winning; the file's own
    # counts, taken here independently of the loader, are what the loader must give.
    last = {row["key"]: row for row in rows}
    assert len(records) == len(last) < len(rows)
    assert all(label_key(r["title"], r["body"]) == r["key"] for r in records)
    assert {r["kind"] for r in records} == {"post", "comment"}
    supports = dict(zip(codebook.ids, Y.sum(axis=0)))
    expected = Counter(theme for row in last.values() for theme in set(row["themes"]))
    assert supports == {theme: expected[theme] for theme in codebook.ids}
    assert int((Y.sum(axis=1) == 0).sum()) == sum(not row["themes"] for row in last.values())


def test_multilabel_folds_partition_and_spread_rare_themes(shared_labels: tuple) -> None:
    codebook, _, Y = shared_labels
    folds = multilabel_folds(Y, 5, seed=0)
    together = np.sort(np.concatenate(folds))
    assert np.array_equal(together, np.arange(len(Y)))
    assert max(len(f) for f in folds) - min(len(f) for f in folds) <= 2
    for column, theme in enumerate(codebook.ids):  # every theme, the rarest included, spread evenly
        per_fold = [int(Y[f, column].sum()) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1, (theme, per_fold)
    assert [list(f) for f in folds] == [list(f) for f in multilabel_folds(Y, 5, seed=0)]


def test_thresholds_maximise_f1_and_respect_the_flood_limit() -> None:
    Y = np.array([[1, 0], [1, 0], [0, 0], [0, 1], [0, 0], [0, 0]])
    P = np.array([[0.9, 0.3], [0.7, 0.2], [0.2, 0.4], [0.1, 0.35], [0.1, 0.5], [0.1, 0.45]])
    thresholds = tune_thresholds(Y, P, max_predicted_ratio=0)
    assert 0.2 < thresholds[0] <= 0.7   # separates 0.7 from 0.2
    assert thresholds[1] <= 0.35        # F1 best when the one positive (0.35) is caught, flooding 3 others
    capped = tune_thresholds(Y, P, max_predicted_ratio=1)
    assert capped[1] > 0.45             # at most one post flagged for a theme with one label
    assert tune_thresholds(np.zeros((3, 1)), np.full((3, 1), 0.9))[0] == 1.0


def test_metrics_and_confusion_by_hand() -> None:
    Y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    pred = np.array([[0, 1, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    result = theme_metrics(Y, pred, ["a", "b", "c"])
    assert result["per_theme"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2, "predicted": 1}
    assert result["per_theme"]["b"]["precision"] == pytest.approx(0.6667, abs=1e-4)
    assert result["per_theme"]["c"]["f1"] == 0.0
    assert result["macro_f1"] == pytest.approx((0.6667 + 0.8 + 0) / 3, abs=1e-3)
    assert theme_confusion(Y, pred, ["a", "b", "c"]) == {"a": {"b": 1}, "c": {"(nothing else)": 1}}


def test_training_is_cached_deterministic_and_keyed_by_labels(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path)
    model, folder, trained = load_or_train(settings)
    assert trained and (folder / "model.pkl").is_file() and (folder / "model_card.md").is_file()
    again, folder_again, trained_again = load_or_train(settings)
    assert folder_again == folder and not trained_again
    texts = ["Any advice for my first interview for a teaching job?", "Free fraction worksheets I made, enjoy"]
    fresh, _, _ = load_or_train(fast_settings(tmp_path / "other"))
    assert np.array_equal(fresh.predict_proba(texts), again.predict_proba(texts))
    assert np.array_equal(fresh.thresholds_, model.thresholds_)
    card = (folder / "model_card.md").read_text()
    thin = {t: n for t, n in model.info["supports"].items() if n < THIN_BELOW}
    assert ("Thin themes" in card) == bool(thin)
    assert all(f"{theme} ({n} labelled)" in card for theme, n in thin.items())
    assert "codebook" in card.lower()
    changed = fast_settings(tmp_path, params={"ngram_max": 1, "C": 3.0})
    assert load_or_train(changed)[1] != folder


def test_minilm_model_with_evaluation_writes_scores_to_its_card(tmp_path: Path) -> None:
    # every 16th shared label keeps MiniLM's embedding (~70 docs/s on 2 idle cores) to seconds
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(line for i, line in enumerate(LABELS.read_text().splitlines(keepends=True)) if i % 16 == 0))
    settings = fast_settings(tmp_path, classifier="themes.minilm_logreg.v1", params={"codebook_weight": 3.0},
                             labels=[subset], eval_folds=2, threshold_folds=2)
    model, folder, _ = load_or_train(settings)
    evaluation = model.info["evaluation"]
    assert model.info["n_labelled"] == len({row["key"] for row in read_jsonl(subset)})
    assert set(evaluation["per_theme"]) == set(model.theme_ids)
    # real signal, far from chance (navigate_career is 44 % of posts; always saying yes scores F1 0.61)
    assert evaluation["per_theme"]["navigate_career"]["f1"] > 0.7
    assert evaluation["per_theme"]["seek_practice_advice"]["f1"] > 0.5
    assert evaluation["macro_f1"] > 0.3
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["evaluation"]["macro_f1"] == evaluation["macro_f1"]
    assert "macro-F1" in (folder / "model_card.md").read_text()
    assert any((tmp_path / "cache").glob("*.npz"))  # embeddings cached for the next run
    P = model.predict_proba(["I got the job! Signed my first teaching contract today."])
    assert "navigate_career" in model.themes_of(P)[0]


RAW_TITLE = "Interview tomorrow &amp; I&#39;m nervous"
RAW_BODY = ("**First interview** for a 5th grade teaching job. Any tips?\n\n> quoted text from someone else\n\n"
            "[my resume](https://example.com/cv.pdf)")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_predict_command_reads_each_format_and_cleans_raw_text(tmp_path: Path, fmt: str) -> None:
    settings_file = tmp_path / "config.yaml"
    settings = fast_settings(tmp_path)
    config = {"lake": str(tmp_path / "lake"),
              "sources": [{"kind": "reddit.dumps.v1", "paths": [str(tmp_path / "none.zst")]}],
              "themes": json.loads(settings.model_dump_json())}
    settings_file.write_text(json.dumps(config))
    frame = pd.DataFrame({"id": ["a", "b", "c"], "title": [RAW_TITLE, "Free worksheets", None],
                          "body": [RAW_BODY, "Sharing my fraction worksheets, free to use.", None]})
    path = tmp_path / f"input.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    out = tmp_path / "out.jsonl"
    app = typer.Typer()
    app.add_typer(themes_app, name="themes")
    result = CliRunner().invoke(app, ["themes", "predict", str(path), "--out", str(out), "--config", str(settings_file)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "c"]
    codebook = load_codebook(CODEBOOK)
    assert set(lines[0]) == {"id", "themes", "scores", "calibrated"} and set(lines[0]["scores"]) == set(codebook.ids)
    assert lines[0]["calibrated"] is True  # the default calibration (platt): the scores are probabilities
    assert all(0.0 <= p <= 1.0 for p in lines[0]["scores"].values())
    assert "navigate_career" in lines[0]["themes"]
    assert lines[2]["themes"] == [] and lines[2]["skipped"] == "no text"
    # the raw markup is cleaned exactly as the pipeline cleans it: same scores as pre-cleaned text
    from edumine.models.text.clean import clean_text

    model, _, _ = load_or_train(settings)
    expected = model.predict_proba([clean_text(RAW_TITLE, RAW_BODY)])[0]
    assert [lines[0]["scores"][t] for t in codebook.ids] == pytest.approx(np.round(expected, 4).tolist(), abs=1e-4)


def test_predict_refuses_input_without_text_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"id": [1], "content": ["x"]}).to_csv(path, index=False)
    app = typer.Typer()
    app.add_typer(themes_app, name="themes")
    result = CliRunner().invoke(app, ["themes", "predict", str(path), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2
    assert "needs a `text` column" in result.output


def test_a_loaded_model_embeds_into_this_runs_cache_not_the_training_one(tmp_path: Path) -> None:
    # regression: the pickled estimator kept the training run's cache_dir, so `predict` with another
    # themes.cache_dir wrote (and read) vectors in the old folder
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(line for i, line in enumerate(LABELS.read_text().splitlines(keepends=True)) if i % 40 == 0))
    trained = fast_settings(tmp_path, classifier="themes.minilm_logreg.v2", params={}, labels=[subset],
                            cache_dir=tmp_path / "a")
    load_or_train(trained)
    model, _, was_trained = load_or_train(trained.model_copy(update={"cache_dir": tmp_path / "b"}))
    assert not was_trained and model.estimator_.cache_dir == str(tmp_path / "b")
    before = sorted(p.name for p in (tmp_path / "a").rglob("*.npz"))
    model.predict_proba(["A text no run has embedded before, about grading essays on a Sunday night."])
    assert sorted(p.name for p in (tmp_path / "a").rglob("*.npz")) == before
    assert any((tmp_path / "b").rglob("*.npz"))
    # the same labels and settings trained again from scratch (own model folder, own ONNX-encoded vectors):
    # the identical model and predictions
    again, _, retrained = load_or_train(trained.model_copy(update={"model_dir": tmp_path / "m2", "cache_dir": tmp_path / "c"}))
    texts = ["Any advice for my first interview for a teaching job?", "Free fraction worksheets I made, enjoy"]
    assert retrained and np.array_equal(again.thresholds_, model.thresholds_)
    assert np.array_equal(again.predict_proba(texts), model.predict_proba(texts))
