"""The theme stage's nightly run touches only the new docs and gives, table by table, what a full recomputation
on a fresh lake gives (issue 12 item 3): doc_themes keeps the labelled docs' rows as they are, and
theme_prevalence recomputes only the (window, community) groups whose docs changed.

r/teaching 2018-19 (tabular): a lake over all posts but the newest few (which fall in one window), then those
arrive as another file and the pipeline runs again; a second lake collects every post in one run. Both use
the cheap TF-IDF classifier of tests/test_themes_pipeline.py, trained once (its folder is shared).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conftest import CORPORA, SHARED, make_config

CSV = CORPORA / "reddit-teaching-2018-19" / "teaching_rmhd.csv"
COLUMNS = {"created": "date", "body": "post", "community": "subreddit", "author": "author"}
NEW = 12  # newest posts held back for the second run


def _themes(root: Path) -> dict:
    return {"codebook": str(SHARED / "codebook" / "sdl_themes.yaml"),
            "labels": [str(SHARED / "labels" / "sdl_train.jsonl")], "imported_labels": str(root / "imported.jsonl"),
            "classifier": "themes.tfidf_logreg.v1", "params": {"ngram_max": 1}, "eval_folds": 0,
            "threshold_folds": 3, "model_dir": str(root / "models"), "cache_dir": str(root / "cache")}


def _run(root: Path, lake: Path, folder: Path):  # noqa: ANN202
    from edumine.pipelines.runner import run_pipeline

    sources = [{"kind": "tabular.v1", "name": "rmhd", "paths": [str(folder / "*.csv")], "columns": COLUMNS}]
    config = make_config(lake, sources, themes=_themes(root), privacy={"key_file": str(root / "pseudonym.key")})
    return run_pipeline(config, only=["preprocess", "themes"]).outputs["themes"]


def _read(lake: Path, name: str) -> pa.Table:
    from edumine.lake import Lake

    return Lake(lake).read(name)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("themes-nightly")
    posts = pd.read_csv(CSV, dtype=str, keep_default_na=False)
    order = pd.to_datetime(posts["date"], format="%Y/%m/%d").sort_values(kind="stable").index
    newest = posts.loc[order[-NEW:]]
    base, both = root / "base", root / "both"
    base.mkdir()
    both.mkdir()
    posts.drop(index=newest.index).to_csv(base / "older.csv", index=False)
    posts.to_csv(both / "all.csv", index=False)
    first = _run(root, root / "nightly" / "lake", base)
    newest.to_csv(base / "newest.csv", index=False)
    nightly = _run(root, root / "nightly" / "lake", base)
    full = _run(root, root / "full" / "lake", both)
    return {"root": root, "first": first, "nightly": nightly, "full": full, "newest": newest}


def test_nightly_tables_equal_a_full_recomputation(lakes: dict) -> None:
    root, first, nightly, full = lakes["root"], lakes["first"], lakes["nightly"], lakes["full"]
    assert nightly["model"] == full["model"] == first["model"] and not nightly["trained_now"]
    assert 0 < nightly["scored_now"] <= NEW and nightly["kept"] == first["docs"]
    assert full["scored_now"] == full["docs"] == nightly["docs"]
    for name in ("doc_themes", "theme_prevalence", "theme_windows"):
        incremental, recomputed = _read(root / "nightly" / "lake", name), _read(root / "full" / "lake", name)
        assert incremental.num_rows > 0, name
        assert incremental.schema.equals(recomputed.schema), name
        # exact, NaN equal to NaN (theme_prevalence.f1 is NaN without an evaluation; Table.equals says NaN != NaN)
        pd.testing.assert_frame_equal(incremental.to_pandas(), recomputed.to_pandas(), check_exact=True, obj=name)


def test_only_the_groups_with_new_docs_are_recomputed(lakes: dict) -> None:
    first, nightly, full = lakes["first"]["prevalence"], lakes["nightly"]["prevalence"], lakes["full"]["prevalence"]
    assert first["groups_kept"] == 0 and first["groups_recomputed"] == first["groups"]
    assert full["groups_kept"] == 0 and full["groups_recomputed"] == full["groups"]
    doc_themes = _read(lakes["root"] / "nightly" / "lake", "doc_themes").to_pandas()
    new = doc_themes[doc_themes["created_at"] >= pd.Timestamp(lakes["newest"]["date"].min(), tz="UTC")]
    from edumine.windows import window_starts

    touched = {(day, c) for day, c in zip(window_starts(new["created_at"], "semester"), new["community"])}
    assert len(touched) == 1  # the newest posts fall in one window (of one community)
    assert nightly["groups_recomputed"] == 1 and nightly["groups_kept"] == nightly["groups"] - 1 > 0
    assert nightly["plan"] == "groups whose docs changed"


def test_a_groups_interval_does_not_depend_on_the_other_groups(lakes: dict) -> None:
    """Regression: the bootstrap seed was ``seed + the group's position``, so removing one window's docs moved
    every later group's interval."""
    from edumine.pipelines.stages.themes import theme_prevalence

    doc_themes = _read(lakes["root"] / "full" / "lake", "doc_themes")
    ids = sorted({k for row in doc_themes.column("scores").to_pylist()[:1] for k, _ in row})
    whole = theme_prevalence(doc_themes, ids, {}, "semester", seed=7).to_pandas()
    first_window = whole["window_start"].min()
    starts = pd.to_datetime(doc_themes.column("created_at").to_pandas())
    later = doc_themes.filter(pa.array((starts >= pd.Timestamp(first_window, tz="UTC") + pd.DateOffset(months=6))
                                       .to_numpy()))
    assert 0 < later.num_rows < doc_themes.num_rows
    part = theme_prevalence(later, ids, {}, "semester", seed=7).to_pandas()
    expected = whole[whole["window_start"] > first_window].reset_index(drop=True)
    assert len(part) == len(expected) > 0 and (part["share_low"] < part["share_high"]).any()
    pd.testing.assert_frame_equal(part, expected)
    # and the seed still matters: another seed gives other intervals for the same docs
    other = theme_prevalence(later, ids, {}, "semester", seed=8).to_pandas()
    assert not np.allclose(other["share_low"], part["share_low"])


def test_a_new_setting_recomputes_every_group(lakes: dict) -> None:
    from edumine.lake import Lake
    from edumine.pipelines.runner import run_pipeline

    root = lakes["root"]
    themes = {**_themes(root), "interval_level": 0.9}
    sources = [{"kind": "tabular.v1", "name": "rmhd", "paths": [str(root / "both" / "*.csv")], "columns": COLUMNS}]
    lake = root / "setting" / "lake"
    shutil.copytree(root / "full" / "lake", lake)
    before = Lake(lake).read("theme_prevalence")
    config = make_config(lake, sources, themes=themes, privacy={"key_file": str(root / "pseudonym.key")})
    again = run_pipeline(config, only=["themes"]).outputs["themes"]["prevalence"]
    assert again["groups_kept"] == 0 and again["groups_recomputed"] == again["groups"]
    after = Lake(lake).read("theme_prevalence")
    assert after.column("share").equals(before.column("share"))
    assert not after.column("share_high").equals(before.column("share_high"))
