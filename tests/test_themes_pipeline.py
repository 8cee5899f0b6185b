"""The theme stage on a real lake (r/teachingresources 2017-18 + r/teaching 2018-19), incremental labelling,
prevalence with intervals, and the labelling round trip: export -> edit -> import -> retrain changes the model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from conftest import CORPORA, SHARED, make_config
from edumine.models.themes.codebook import load_codebook
from edumine.models.themes.classifier import load_or_train
from edumine.models.themes.calibration import PCC
from edumine.models.themes.data import read_jsonl
from edumine.pipelines.runner import run_pipeline
from edumine.themes_cli import themes_app

CODEBOOK = SHARED / "codebook" / "sdl_themes.yaml"
LABELS = SHARED / "labels" / "sdl_train.jsonl"
SOURCES = [
    {"kind": "reddit.dumps.v1", "name": "resources",
     "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_submissions.zst")]},
    {"kind": "tabular.v1", "name": "rmhd", "paths": [str(CORPORA / "reddit-teaching-2018-19" / "*.csv")],
     "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}},
]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("themes")
    themes = {"codebook": str(CODEBOOK), "labels": [str(LABELS)], "imported_labels": str(root / "imported.jsonl"),
              "classifier": "themes.tfidf_logreg.v1", "params": {"ngram_max": 1}, "eval_folds": 0,
              "threshold_folds": 3,
              "model_dir": str(root / "models"), "cache_dir": str(root / "cache"),
              "export": {"n": 14, "path": str(root / "to_label.csv")}}
    data = {"lake": str(root / "lake"), "sources": SOURCES, "privacy": {"key_file": str(root / "key")},
            "themes": themes}
    (root / "config.json").write_text(json.dumps(data))
    config = make_config(root / "lake", SOURCES, themes=themes)
    first = run_pipeline(config, only=["preprocess", "themes"]).outputs["themes"]
    return {"root": root, "config": config, "config_file": root / "config.json", "first": first}


def cli(*args: str) -> object:
    app = typer.Typer()
    app.add_typer(themes_app, name="themes")
    return CliRunner().invoke(app, ["themes", *args])


def test_stage_labels_every_usable_post_and_writes_prevalence(work: dict) -> None:
    lake = work["root"] / "lake"
    first = work["first"]
    doc_themes = pq.read_table(lake / "doc_themes").to_pandas()
    assert first["docs"] == len(doc_themes) == first["scored_now"] and first["usable_from"] == "docs.usable"
    docs = pq.read_table(lake / "docs", columns=["uid", "kind", "usable"]).to_pandas()
    usable = docs[docs["usable"] & (docs["kind"] == "post")]
    # every doc preprocessing marked usable, and only those (themes read docs, not posts)
    assert doc_themes["uid"].is_unique and set(doc_themes["uid"]) == set(usable["uid"]) and len(doc_themes) > 700
    assert set(doc_themes["community"]) == {"teachingresources", "teaching"}
    ids = set(load_codebook(CODEBOOK).ids)
    assert all(set(t) <= ids for t in doc_themes["themes"])
    assert all({k for k, _ in s} == ids for s in doc_themes["scores"].head(50))
    assert doc_themes["themes"].map(len).sum() > 0

    prevalence = pq.read_table(lake / "theme_prevalence").to_pandas()
    assert list(prevalence.columns) == ["window_start", "window_label", "community", "theme", "theme_label", "docs",
                                        "theme_docs", "share", "share_low", "share_high", "model", "method", "f1",
                                        "reliable"]
    # calibrated, not evaluated (eval_folds 0): the mean calibrated probability, and no theme is reliable
    assert set(prevalence["method"]) == {first["method"]} == {PCC}
    assert prevalence["f1"].isna().all() and not prevalence["reliable"].any()
    weighted = (prevalence["share"] * prevalence["docs"]).groupby(prevalence["theme"]).sum() / len(doc_themes)
    mean_scores = pd.DataFrame([dict(s) for s in doc_themes["scores"]]).mean()
    assert weighted.to_dict() == pytest.approx(mean_scores[weighted.index].to_dict(), abs=1e-6)
    assert {"2017H2", "2018H1", "2018H2", "2019H1", "2019H2"} <= set(prevalence["window_label"])
    assert len(prevalence) == prevalence[["window_label", "community"]].drop_duplicates().shape[0] * len(ids)
    per_window = prevalence.groupby(["window_label", "community"])["docs"].first().sum()
    assert per_window == len(doc_themes)
    assert (prevalence["share_low"] <= prevalence["share"] + 1e-12).all()
    assert (prevalence["share"] <= prevalence["share_high"] + 1e-12).all()
    row = prevalence[prevalence["theme_docs"] > 0].iloc[0]
    assert row["share_low"] < row["share_high"]


def test_second_run_scores_only_new_docs(work: dict) -> None:
    again = run_pipeline(work["config"], only=["themes"]).outputs["themes"]
    assert again["scored_now"] == 0 and again["kept"] == work["first"]["docs"] and not again["trained_now"]


def test_labelling_round_trip_changes_the_model(work: dict) -> None:
    root, config_file = work["root"], str(work["config_file"])
    before, before_folder, _ = load_or_train(work["config"].themes)

    exported = cli("export-for-labelling", "--config", config_file)
    assert exported.exit_code == 0, exported.output
    sheet = pd.read_csv(root / "to_label.csv", dtype=str, keep_default_na=False)
    codebook = load_codebook(CODEBOOK)
    assert len(sheet) == 14
    assert [c for c in sheet.columns if c in codebook.ids or c == "no_theme"] == [*codebook.ids, "no_theme"]
    assert sheet[codebook.ids].eq("").all().all()          # blank for the person to fill
    assert sheet["uncertain_theme"].nunique() > 1 or sheet["window_label"].nunique() > 1   # stratified
    shipped = {r["key"] for r in read_jsonl(LABELS)}
    assert not set(sheet["key"]) & shipped                  # already-labelled posts are not asked again

    # A person labels ten posts as upholding community norms, one as no theme, and makes mistakes.
    sheet.loc[:9, "uphold_community_norms"] = "1"
    sheet.loc[10, "no_theme"] = "x"
    sheet.loc[11, "share_resources"] = "maybe"                         # invalid cell
    sheet.loc[12, "seek_practice_advice"] = "1"
    clash = sheet.loc[[12]].assign(seek_practice_advice="", request_resources="1")   # same post, other label
    dupe = sheet.loc[[0]]                                                  # same post, same label
    unknown = sheet.loc[[1]].assign(uid="reddit:post:doesnotexist", key="000000000000")
    first_shipped = read_jsonl(LABELS)[0]                                  # relabel a shipped post differently
    relabel = sheet.loc[[2]].assign(uid="", key=first_shipped["key"], uphold_community_norms="",
                                    emotional_support="1")
    edited = pd.concat([sheet, clash, dupe, unknown, relabel], ignore_index=True)
    edited.to_csv(root / "labelled.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)

    imported = cli("import-labels", str(root / "labelled.csv"), "--config", config_file)
    assert imported.exit_code == 1, imported.output                       # problems were found and reported
    assert "11 imported" in imported.output
    assert "unknown ids (1)" in imported.output and "doesnotexist" in imported.output
    assert "duplicates (1)" in imported.output
    assert "conflicts (2)" in imported.output and "--replace" in imported.output
    assert "invalid rows (1)" in imported.output and "maybe" in imported.output
    store = read_jsonl(root / "imported.jsonl")
    assert len(store) == 11
    assert sum(r["themes"] == ["uphold_community_norms"] for r in store) == 10
    assert sum(r["themes"] == [] for r in store) == 1

    after, after_folder, trained = load_or_train(work["config"].themes)
    assert trained and after_folder != before_folder
    norms_before = before.info["supports"]["uphold_community_norms"]
    assert after.info["n_imported"] == 11 and after.info["supports"]["uphold_community_norms"] == norms_before + 10
    texts = [r["title"] + ". " + r["body"] for r in store[:10]]
    column = codebook.ids.index("uphold_community_norms")
    assert (after.predict_proba(texts)[:, column] > before.predict_proba(texts)[:, column]).all()

    rerun = run_pipeline(work["config"], only=["themes"]).outputs["themes"]   # the next run retrains and relabels
    assert rerun["model"] == after_folder.name and rerun["scored_now"] == rerun["docs"]

    again = cli("import-labels", str(root / "labelled.csv"), "--config", config_file)
    assert "0 imported" in again.output and "11 unchanged" in again.output
    assert len(read_jsonl(root / "imported.jsonl")) == 11

    replaced = cli("import-labels", str(root / "labelled.csv"), "--config", config_file, "--replace")
    assert "1 replacing a label" in replaced.output
    assert any(r["key"] == first_shipped["key"] and r["themes"] == ["emotional_support"]
               for r in read_jsonl(root / "imported.jsonl"))


def test_import_refuses_a_sheet_from_another_codebook(work: dict, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    pd.DataFrame({"uid": ["x"], "humour": ["1"]}).to_csv(path, index=False)
    result = cli("import-labels", str(path), "--config", str(work["config_file"]))
    assert result.exit_code == 2 and "different codebook" in result.output


def test_stage_on_a_lake_without_usable_posts(tmp_path: Path) -> None:
    from edumine.pipelines.stages.themes import theme_prevalence

    empty = pd.DataFrame({"uid": [], "community": [], "created_at": pd.to_datetime([], utc=True), "themes": []})
    table = theme_prevalence(empty, ["a", "b"], {"a": "A", "b": "B"}, "semester")
    assert table.num_rows == 0 and {"share_high", "method", "f1", "reliable"} <= set(table.column_names)


def test_stage_embeds_docs_text_into_the_lake_cache_the_topic_stage_reads(tmp_path: Path) -> None:
    """A MiniLM theme model encodes each doc once, through the registered backend, into the lake's shared
    cache keyed by (uid, docs.text_hash): the topic stage's embed_with_cache with the same backend finds them
    all without encoding any."""
    import numpy as np

    from edumine.models.embeddings.backends import EmbeddingCache, embed_with_cache, make_embedder

    subset = tmp_path / "subset.jsonl"  # every 20th shared label keeps the label embedding to seconds
    subset.write_text("".join(line for i, line in enumerate(LABELS.read_text().splitlines(keepends=True)) if i % 20 == 0))
    themes = {"codebook": str(CODEBOOK), "labels": [str(subset)], "imported_labels": str(tmp_path / "imported.jsonl"),
              "classifier": "themes.minilm_logreg.v2", "eval_folds": 0, "threshold_folds": 2,
              "model_dir": str(tmp_path / "models"), "cache_dir": str(tmp_path / "cache")}
    config = make_config(tmp_path / "lake", SOURCES[1:], themes=themes)
    first = run_pipeline(config, only=["preprocess", "themes"]).outputs["themes"]
    assert first["usable_from"] == "docs.usable"
    info = first["embedding"]
    assert info["backend"] == "embeddings.minilm_onnx.v1" and info["text_column"] == "docs.text"
    assert info["embedded"] == first["scored_now"] > 100 and info["from_cache"] == 0
    docs = pq.read_table(tmp_path / "lake" / "docs", columns=["uid", "text", "text_hash", "usable"]).to_pandas()
    docs = docs[docs["usable"]].sort_values("uid")
    backend = make_embedder("embeddings.minilm_onnx.v1")  # what topics.embeddings.backend would build
    assert Path(info["cache"]) == tmp_path / "lake" / "cache" / "embeddings" / backend.key
    vectors, counts = embed_with_cache(backend, tmp_path / "lake" / "cache" / "embeddings", docs["uid"].tolist(),
                                       docs["text_hash"].tolist(), docs["text"].tolist())
    assert counts["embedded"] == 0 and counts["from_cache"] == len(docs) == first["docs"]
    again = backend.encode(docs["text"].tolist()[:3])  # int8 activations are scaled per batch: near, not equal
    cosine = (vectors[:3] * again).sum(axis=1) / np.linalg.norm(vectors[:3], axis=1) / np.linalg.norm(again, axis=1)
    assert (cosine > 0.98).all()
    assert len(EmbeddingCache(tmp_path / "lake" / "cache" / "embeddings", backend.key)) == len(docs)
