"""The fault battery as tests (issue 16 item 6): SIGKILL a pipeline run at a named point (edumine/faults.py),
rerun it, and compare every table with an uninterrupted run: identical, apart from run ids and clocks.

Scenario: run 1 collects 300 r/teaching posts and runs every stage; run 2 adds 260 more posts from a CSV (so
its topic stage refits: the case where a kill once left "0 docs added since the last refit" and another
model). Run 2 is killed at a point, then run again. The default suite kills at a representative few points;
``-m slow`` runs the whole matrix, themes included.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import CORPORA, ROOT, TEST_KEY
from edumine.manifest import run_manifests

VOLATILE = {"run_id", "ingest_run", "first_run", "last_run", "built_by_run", "built_at", "at", "seconds",
            "quarantined_at", "manifest_path", "posts_signature", "docs_signature"}  # a file's mtime and inode differ between copies
DEFAULT_POINTS = ["merge", "topics.write"]  # collection, and the refit that once went wrong
ALL_POINTS = ["collect.staging", "merge", "stage.collect.after", "preprocess.partition", "stage.preprocess.after",
              "topics.fit", "topics.refit", "topics.write", "stage.topics.after", "stage.lineage.after",
              "themes.write", "stage.themes.after", "stage.metrics.after", "store.write", "stage.store.after",
              "report.write", "stage.report.after"]


def _slice(target: Path, source: Path, n: int) -> Path:
    """The first ``n`` records of a shared dump, as a small dump of its own."""
    with open(source, "rb") as handle:
        lines = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle).read().split(b"\n")[:n]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    return target


def _settings(work: Path, lake: Path, n_sources: int, themes: bool) -> Path:
    sources = [{"kind": "reddit.dumps.v1", "name": "teaching", "paths": [str(work / "in" / "teaching.zst")]},
               {"kind": "tabular.v1", "name": "rmhd", "paths": [str(CORPORA / "reddit-teaching-2018-19" / "*.csv")],
                "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}}]
    data = {"lake": str(lake), "privacy": {"key_file": str(work / "key")}, "sources": sources[:n_sources],
            "collect": {"chunk_rows": 100}, "topics": {"bootstrap_resamples": 100},
            "themes": {"enabled": themes, "classifier": "themes.tfidf_logreg.v1", "eval_folds": 0,
                       "model_dir": str(work / "themes-models"), "cache_dir": str(work / "themes-cache")}}
    path = lake.parent / f"settings-{lake.name}-{n_sources}.json"
    path.write_text(json.dumps(data))
    return path


def _run(settings: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=TEST_KEY)
    env.pop("EDUMINE_KILL_AT", None)
    if kill_at:
        env["EDUMINE_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, str(ROOT / "tests" / "crash_run.py"), str(settings)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def _rows(table: Any) -> list[str]:
    keep = [c for c in table.column_names if c not in VOLATILE]
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in table.select(keep).to_pylist())


def lake_state(lake: Path) -> dict[str, Any]:
    """Every table of the lake (posts, derived tables, the store's tables, the last run's quarantine, the
    report's text), without run ids and clocks."""
    state: dict[str, Any] = {}
    for path in sorted(lake.rglob("*.parquet")):
        relative = path.relative_to(lake).as_posix()
        top = relative.split("/", 1)[0]
        if top.startswith("_") or top in ("runs", "quarantine", "models"):
            continue
        rows = _rows(pq.read_table(path))
        # activity_runs lists the collection runs that posts came from: a killed run that merged posts before
        # dying is one more such run (its ids are volatile, so only the distinct rows can agree).
        state[relative] = sorted(set(rows)) if top == "activity_runs" else rows
    completed = [manifest for _, manifest in run_manifests(lake)]
    completed = [m for m in completed if m["status"] == "completed"]
    last = completed[-1]["run_id"]
    if (lake / "quarantine" / last).exists():
        state["quarantine"] = _rows(ds.dataset(lake / "quarantine" / last, format="parquet").to_table())
    # Not compared: the run's own counts (manifest totals, the report's "Inputs of this run"), which say what
    # that run did: a rerun adds nothing the killed run had already merged. The tables are what must agree.
    state["topic_scores"] = completed[-1]["scores"].get("topics")
    models = sorted((lake / "models" / "topics").glob("*/manifest.json"))
    state["topic_models"] = [{k: v for k, v in json.loads(p.read_text()).items()
                              if k in ("corpus_size", "scores", "embedding_key", "n_docs", "params")} for p in models]
    if (lake / "summary.duckdb").exists():
        import duckdb

        con = duckdb.connect(str(lake / "summary.duckdb"), read_only=True)
        for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            if name not in ("runs", "store_contents"):
                state[f"store:{name}"] = _rows(con.sql(f'SELECT * FROM "{name}"').to_arrow_table())
        con.close()
    if (lake / "report.html").exists():
        text = (lake / "report.html").read_text(encoding="utf-8").replace(str(lake), "LAKE")
        text = re.sub(r"generated \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", "generated TIME", text)
        text = re.sub(r"\b[0-9a-f]{16}\b", "HASH", text)  # the config hash: the lake's path is in the config
        text = re.sub(r"<h3>Inputs of this run</h3>.*?<h3>", "<h3>", text, flags=re.DOTALL)
        text = re.sub(r"git commit</td>\s*<td>[^<]*</td>", "git commit</td><td>COMMIT</td>", text)  # provenance
        text = re.sub(r"\d{8}T\d{6}Z-[0-9a-f]{6}", "RUN", text)
        text = re.sub(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?", "TIME", text)
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", text)
        text = re.sub(r"\d+(\.\d+)? ?(s|ms|MB|MiB)\b", "N", text)
        state["report"] = text
    return state


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Any]:
    themes = request.param if hasattr(request, "param") else False
    work = tmp_path_factory.mktemp("crash")
    _slice(work / "in" / "teaching.zst", CORPORA / "reddit-teaching-2017-18" / "teaching_submissions.zst", 300)
    base = work / "base"
    first = _run(_settings(work, base, 1, themes))
    assert first.returncode == 0, first.stderr[-3000:]
    clean = work / "clean"
    shutil.copytree(base, clean)
    second = _run(_settings(work, clean, 2, themes))
    assert second.returncode == 0, second.stderr[-3000:]
    manifest = run_manifests(clean)[-1][1]
    assert manifest["outputs"]["topic_update"]["mode"] == "refit"
    return {"work": work, "base": base, "themes": themes, "expected": lake_state(clean)}


def _kill_and_rerun(scenario: dict[str, Any], point: str) -> None:
    work = scenario["work"]
    lake = work / f"killed-{point}"
    shutil.copytree(scenario["base"], lake)
    settings = _settings(work, lake, 2, scenario["themes"])
    killed = _run(settings, kill_at=point)
    assert killed.returncode == -9, f"the run was not killed at {point}: rc {killed.returncode}\n{killed.stderr[-2000:]}"
    rerun = _run(settings)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # In start order, not by name: a run id has one-second resolution (the cause of a flaky failure here).
    manifests = [manifest for _, manifest in run_manifests(lake)]
    assert [m["status"] for m in manifests] == ["completed", "interrupted", "completed"]
    recovery = manifests[-1]["outputs"].get("recovery", {})
    assert recovery.get("interrupted_runs") == [manifests[1]["run_id"]]
    state = lake_state(lake)
    expected = scenario["expected"]
    assert sorted(state) == sorted(expected)
    different = [name for name in expected if state[name] != expected[name]]
    assert not different, f"after a kill at {point}, these differ from an uninterrupted run: {different}"
    assert not (lake / "_snapshot").exists() and not (lake / "_staging").exists()


@pytest.mark.parametrize("point", DEFAULT_POINTS)
def test_a_killed_run_reruns_to_the_same_tables(scenario: dict[str, Any], point: str) -> None:
    _kill_and_rerun(scenario, point)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [True], indirect=True, ids=["themes"])
@pytest.mark.parametrize("point", ALL_POINTS)
def test_the_full_kill_matrix(scenario: dict[str, Any], point: str) -> None:
    _kill_and_rerun(scenario, point)
