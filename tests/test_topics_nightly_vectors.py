"""A nightly topic update reads only the vectors of the docs it adds (models/topics/nightly_vectors.py), and its
tables are those of an update that reads every doc's vector (the behaviour before, issue 12 item 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_topic_ids import _config  # the top posts of 2009-13 up to a date, 30 topics, yearly windows

from edumine.models.topics.nightly_vectors import DocVectors

STAGES = ["preprocess", "topics"]
TABLES = ("topics", "doc_topics", "topic_prevalence", "topic_outlier_pool", "topic_ids")
# A small outlier pool is clustered every night: docs of earlier nights get a topic, and new topics appear.
NIGHTLY = {"lineage": {"update": {"mode": "incremental", "pool_min_docs": 20, "new_topic_min_docs": 5}}}


def _read(lake: Path, name: str) -> pd.DataFrame:
    import pyarrow.dataset as ds

    frame = ds.dataset(lake / name, format="parquet").to_table().to_pandas()
    # which run wrote a row, and when, differs between the two lakes
    frame = frame.drop(columns=[c for c in frame if c in ("run_id", "at", "seconds") or c.endswith("_run")])
    key = [c for c in ("uid", "topic_id", "stable_id", "window_start", "community") if c in frame]
    return frame.sort_values(key).reset_index(drop=True)


def _scramble_cached_vectors(lake: Path) -> int:
    """Every cached vector of the lake replaced by noise (its index and the backends' fitted state stay): an
    update that read an old doc's vector would get other tables than one that reads the true vectors."""
    rng = np.random.default_rng(0)
    chunks = list((lake / "cache" / "embeddings").rglob("chunk-*.npz"))
    for chunk in chunks:
        with np.load(chunk, allow_pickle=False) as data:
            uids, hashes, vectors = data["uids"], data["hashes"], data["vectors"]
        with open(chunk, "wb") as handle:
            np.savez(handle, uids=uids, hashes=hashes, vectors=rng.normal(size=vectors.shape).astype(np.float32))
    return len(chunks)


def test_nightly_update_reads_only_new_vectors_and_equals_reading_all(tmp_path: Path, monkeypatch) -> None:
    from edumine.pipelines.runner import run_pipeline

    fast, full = tmp_path / "fast" / "lake", tmp_path / "full" / "lake"
    refit = run_pipeline(_config(fast, "2013-03-01", lineage={"update": {"mode": "refit"}}), only=STAGES)
    assert refit.outputs["topic_update"]["mode"] == "refit"
    shutil.copytree(fast.parent, full.parent)
    seen = {"resolved_from_pool": 0, "new_topics": 0}
    for until in ("2013-05-01", "2013-07-01", "2013-09-01"):  # the corpus ends in August 2013
        assert _scramble_cached_vectors(fast) > 0
        night = run_pipeline(_config(fast, until, **NIGHTLY), only=STAGES).outputs
        update = night["topic_update"]
        assert update["mode"] == "incremental" and update["docs_new"] > 0
        embedding = night["topics"]["embedding"]
        # Only the new docs were embedded; no old doc's (scrambled) vector was read: the tables below match.
        assert (embedding["embedded"], embedding["from_cache"]) == (update["docs_new"], 0), embedding

        with monkeypatch.context() as patched:  # the update as it was: every doc's vector read
            patched.setattr("edumine.models.topics.nightly_vectors.nightly_rows", lambda *args, **kwargs: None)
            reference = run_pipeline(_config(full, until, **NIGHTLY), only=STAGES).outputs
        assert reference["topic_update"] == update
        assert reference["topics"]["embedding"]["from_cache"] == night["topics"]["docs"] - update["docs_new"]
        assert reference["topics"]["scores"] == night["topics"]["scores"]
        for name in TABLES:
            pd.testing.assert_frame_equal(_read(fast, name), _read(full, name), obj=f"{name} (until {until})")
        seen["resolved_from_pool"] += update["resolved_from_pool"]
        seen["new_topics"] += len(update["new_topics"])
    # The nights went through the pool's branches: docs of earlier nights resolved, topics added.
    assert seen["resolved_from_pool"] > 0 and seen["new_topics"] > 0, seen


def test_doc_vectors_reads_the_rest_only_when_asked() -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(6, 2)
    asked: list[object] = []

    def embed(rows: np.ndarray | None) -> tuple[np.ndarray, dict]:
        asked.append(None if rows is None else rows.tolist())
        picked = vectors if rows is None else vectors[rows]
        return picked, {"key": "k", "embedded": len(picked), "from_cache": 0}

    nightly = {"needed": np.array([4, 5]), "closeness": np.full(6, 0.5, np.float32),
               "topics": np.array([0, 1, -1, 0, -2, -2])}
    lazy = DocVectors(embed, 6, nightly)
    assert lazy.partial and asked == [[4, 5]]
    np.testing.assert_array_equal(lazy.rows(np.array([5, 4])), vectors[[5, 4]])
    with pytest.raises(KeyError):
        lazy.rows(np.array([0]))  # an old doc's vector is never read behind the caller's back
    # Rows the update touched: the needed ones and a pooled doc (row 2) that got a topic.
    np.testing.assert_array_equal(lazy.touched(np.array([0, 1, 3, 0, 1, 1])), [2, 4, 5])
    np.testing.assert_array_equal(lazy.all(), vectors)
    assert asked == [[4, 5], None] and not lazy.partial and lazy.info["embedded"] == 8
