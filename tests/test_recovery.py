"""Crash consistency of runs (edumine/recovery.py, pipelines/runner.py): derived outputs commit all or none,
runs that died are marked, damaged files are found, and a failure while failing is still recorded."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from edumine import recovery
from edumine.cli import app
from edumine.lake import Lake
from edumine.pipelines.runner import close_run, open_run, run_collect

from conftest import make_config
from dumpfiles import submission, write_zst


def _derived(root: Path) -> dict[str, bytes]:
    return {p.as_posix(): (root / p).read_bytes() for p in recovery.derived_files(root)}


def test_a_run_that_did_not_complete_leaves_the_derived_files_as_they_were(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    (root / "models" / "topics").mkdir(parents=True)
    (root / "models" / "topics" / "latest.json").write_text('{"run_id": "r1"}')
    pq.write_table(pa.table({"x": list(range(100_000))}), root / "big.parquet")  # linked, not copied
    (root / "posts").mkdir()
    (root / "posts" / "p.parquet").write_bytes(b"posts are not derived")
    before = _derived(root)
    recovery.begin(root, "r2")
    # What a run does: rewrite a small file in place, replace a large one, add files and folders.
    (root / "models" / "topics" / "latest.json").write_text('{"run_id": "r2"}')
    tmp = root / ".tmp-x"
    pq.write_table(pa.table({"x": [1]}), tmp)
    os.replace(tmp, root / "big.parquet")
    (root / "models" / "topics" / "r2").mkdir()
    (root / "models" / "topics" / "r2" / "model.bin").write_bytes(b"new")
    (root / "posts" / "p.parquet").write_bytes(b"posts changed")
    undone = recovery.recover(root)
    assert undone == {"run_id": "r2", "restored": 2, "removed": 1}
    assert _derived(root) == before
    assert not (root / "models" / "topics" / "r2").exists()
    assert (root / "posts" / "p.parquet").read_bytes() == b"posts changed"  # posts are kept
    assert recovery.recover(root) is None  # nothing left to undo
    recovery.begin(root, "r3")
    recovery.commit(root)
    assert not (root / recovery.SNAPSHOT).exists() and recovery.recover(root) is None


def test_unreadable_derived_files_are_removed_and_unreadable_posts_are_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    (root / "docs" / "a").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1, 2]}), root / "docs" / "a" / "good.parquet")
    (root / "docs" / "a" / "bad.parquet").write_bytes(b"PAR1 truncated")
    assert recovery.verify_derived(root) == ["docs/a/bad.parquet"]
    assert (root / "docs" / "a" / "good.parquet").exists() and not (root / "docs" / "a" / "bad.parquet").exists()
    part = root / "posts" / "platform=reddit" / "community=t" / "month=2018-01" / "part-0.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"PAR1 cut")
    with pytest.raises(recovery.LakeDamagedError, match="cannot be read.*backup"):
        recovery.verify_derived(root)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_failure_while_failing_is_still_recorded(tmp_path: Path) -> None:
    dump = write_zst(tmp_path / "in" / "a.zst", [submission("a")])
    config = make_config(tmp_path / "lake", [{"kind": "reddit.dumps.v1", "paths": [str(dump)]}])
    run_collect(config)
    ctx = open_run(config, "pipeline")
    _truncate(next((tmp_path / "lake" / "posts").rglob("*.parquet")))  # the lake breaks during the run
    close_run(ctx, "failed", RuntimeError("a stage failed"))
    manifest = json.loads(ctx.manifest_path.read_text())
    assert manifest["status"] == "failed" and manifest["error"] == "RuntimeError: a stage failed"
    assert manifest["outputs"]["posts_rows"] is None and "summarise_error" in manifest["outputs"]
    Lake(tmp_path / "lake").lock()  # the lock was released


def test_a_killed_run_is_marked_interrupted_and_its_derived_outputs_rolled_back(tmp_path: Path) -> None:
    dump = write_zst(tmp_path / "in" / "a.zst", [submission("a")])
    config = make_config(tmp_path / "lake", [{"kind": "reddit.dumps.v1", "paths": [str(dump)]}])
    ctx = open_run(config, "pipeline")
    (tmp_path / "lake" / "topics").mkdir()
    (tmp_path / "lake" / "topics" / "part-0.parquet").write_bytes(b"half a table")
    ctx.lake.unlock()  # what a SIGKILL does: the lock goes with the process, the manifest stays "running"
    second = run_collect(config)
    first = json.loads(ctx.manifest_path.read_text())
    assert first["status"] == "interrupted" and "without closing" in first["error"]
    recovered = second.outputs["recovery"]
    assert recovered["interrupted_runs"] == [ctx.run_id]
    assert recovered["rolled_back"]["run_id"] == ctx.run_id
    assert not (tmp_path / "lake" / "topics").exists()


def test_edumine_query_on_a_truncated_lake_says_so_without_a_traceback(tmp_path: Path) -> None:
    dump = write_zst(tmp_path / "in" / "a.zst", [submission("a"), submission("b", created=1520000000)])
    run_collect(make_config(tmp_path / "lake", [{"kind": "reddit.dumps.v1", "paths": [str(dump)]}]))
    _truncate(next((tmp_path / "lake" / "posts").rglob("*.parquet")))
    result = CliRunner().invoke(app, ["query", "select count(*) from posts", "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 2, result.output
    assert "cannot be read" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_lost_embedding_cache_is_rebuilt_with_the_fitted_state_kept_by_the_model(tmp_path: Path) -> None:
    import numpy as np

    from edumine.models.embeddings.backends import embed_with_cache, make_embedder

    first_corpus = ["student behaviour classroom management", "math lesson fraction worksheet",
                    "job interview district", "classroom management behaviour plan", "fraction lesson math game"] * 4
    later_corpus = first_corpus + ["math worksheet fraction"] * 3 + ["interview district job offer"] * 3
    uids = [f"u{i}" for i in range(len(later_corpus))]

    def embedder():  # noqa: ANN202
        return make_embedder("embeddings.tfidf_svd.v1", dims=3, min_df=1, max_df=1.0)

    fitted = embedder()
    before, info = embed_with_cache(fitted, tmp_path / "cache", uids[:20], ["h"] * 20, first_corpus)
    model_dir = tmp_path / "model" / "embedder"  # what the topic stage keeps beside the saved model
    model_dir.mkdir(parents=True)
    (model_dir / "state.pkl").write_bytes((tmp_path / "cache" / fitted.base_key / "state.pkl").read_bytes())
    shutil.rmtree(tmp_path / "cache")  # the cache is lost

    # Without the model's copy, the state is refitted on another corpus: another key, never the same one.
    refitted = embedder()
    _, info_refit = embed_with_cache(refitted, tmp_path / "other", uids, ["h"] * len(uids), later_corpus)
    assert info_refit["key"] != info["key"]
    # With it, the same state and key come back, and the same vectors.
    restored = embedder()
    again, info_again = embed_with_cache(restored, tmp_path / "cache", uids, ["h"] * len(uids), later_corpus,
                                         state_sources=(model_dir,))
    assert info_again["key"] == info["key"]
    assert np.allclose(again[:20], before, atol=1e-6)


def test_an_incremental_topic_update_needs_its_model_doc_topics_and_pool_to_agree(tmp_path: Path) -> None:
    import pandas as pd

    from edumine.models.topics.update import TopicState, incremental_state_problem

    folder = tmp_path / "models" / "topics" / "r1"
    folder.mkdir(parents=True)
    pool = pd.DataFrame({"uid": pd.Series([], dtype=object)})
    doc_topics = pa.table({"uid": ["a"], "topic_id": [1], "run_id": ["r1"]})
    state = TopicState(model_dir=folder, model_run="r1", doc_topics=doc_topics, pool=pool)
    assert incremental_state_problem(state) is None
    state.doc_topics = pa.table({"uid": ["a"], "topic_id": [1], "run_id": ["r0"]})
    assert "saved model by run r1" in incremental_state_problem(state)
    state.doc_topics = None
    assert incremental_state_problem(state) == "doc_topics is missing"
    state.doc_topics, state.pool = doc_topics, None
    assert incremental_state_problem(state) == "topic_outlier_pool is missing"
    assert incremental_state_problem(TopicState()) == "no saved topic model"
