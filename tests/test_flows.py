"""The real Prefect flows, run the way a user runs them: `edumine run` with no Prefect server configured."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import SHARED_MODELS, CORPORA, ROOT, TEST_KEY

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("flow")
    config = {
        "lake": str(work / "lake"),
        "privacy": {"key_file": str(work / "key")},
        "sources": [
            {"kind": "reddit.dumps.v1", "name": "resources",
             "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_*.zst")]},
            {"kind": "tabular.v1", "name": "rmhd", "paths": [str(CORPORA / "reddit-teaching-2018-19" / "*.csv")],
             "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}},
        ],
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=TEST_KEY, PREFECT_HOME=str(work / "prefect"))
    env.pop("PREFECT_API_URL", None)
    result = subprocess.run([sys.executable, "-m", "edumine.cli", "run", "--config", str(work / "config.yaml"),
                             *FAST_STAGES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return work, result


# Later stages are tested on their own; here the flow structure matters, so keep model stages small.
FAST_STAGES: list[str] = ["--set", "themes.classifier=themes.tfidf_logreg.v1", "--set", "themes.eval_folds=0",
                           "--set", f"themes.model_dir={SHARED_MODELS / 'themes'}"]  # trained once, shared


def test_edumine_run_runs_the_pipeline_flow_with_an_ephemeral_server(flow_run) -> None:
    work, result = flow_run
    assert result.returncode == 0, result.stderr[-3000:]
    manifests = list((work / "lake" / "runs").glob("*/manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["status"] == "completed" and manifest["flow"] == "pipeline"
    # The store and the report ran before the flow closed; both carry its final status, as the manifest does.
    import duckdb

    with duckdb.connect(str(work / "lake" / "summary.duckdb"), read_only=True) as store:
        assert store.execute("SELECT status FROM runs").fetchall() == [("completed",)]
    assert 'status <b class="status">completed</b>' in (work / "lake" / "report.html").read_text(encoding="utf-8")
    assert [i["label"] for i in manifest["inputs"]] == ["resources", "rmhd"]
    assert manifest["inputs"][0]["added"] == 920 + 1036 and manifest["inputs"][1]["added"] == 260
    assert manifest["totals"]["added"] == 2216 and manifest["outputs"]["posts_rows"] == 2216
    assert manifest["config_hash"] and manifest["code_version"]["edumine"]
    assert "collect" in manifest["timings"]
    # Resident memory high-water mark after each stage, non-decreasing in run order (a process-wide peak).
    peaks = list(manifest["peak_rss_mb"].values())
    assert "collect" in manifest["peak_rss_mb"] and peaks[0] > 50 and peaks == sorted(peaks)
    # Throughput of each stage that counts docs, from its own summary and timing.
    rates = manifest["docs_per_s"]
    assert {"collect", "preprocess", "topics", "themes"} <= set(rates)
    for stage in ("preprocess", "topics", "themes"):
        docs, seconds = manifest["outputs"][stage]["docs"], manifest["timings"][stage]
        assert rates[stage] == pytest.approx(docs / seconds, rel=0.01)
    assert "manifest:" in result.stdout and str(work / "lake") in result.stdout
    assert "Finished in state Completed" in result.stderr


def test_a_failed_run_leaves_a_failed_manifest_and_a_clear_error(flow_run, tmp_path: Path) -> None:
    work, _ = flow_run
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=TEST_KEY, PREFECT_HOME=str(work / "prefect"))
    result = subprocess.run([sys.executable, "-m", "edumine.cli", "collect", "--config", str(work / "config.yaml"),
                             "--set", "sources.0.paths=[/nonexistent/*.zst]", "--set", "windows.unit=decade"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "windows.unit" in result.stderr and "Traceback" not in result.stderr


def test_everything_a_run_writes_is_in_the_catalog(flow_run) -> None:
    from edumine.catalog import CATALOG

    work, result = flow_run
    assert result.returncode == 0, result.stderr[-3000:]
    lake = work / "lake"
    written = {path.name for path in lake.iterdir() if not path.name.startswith(".")}
    groups = {name.split("/")[0] for name in CATALOG if "/" in name}  # models/..., cache/...: artefact folders
    assert written - set(CATALOG) - groups == set()
    nested = {f"{group}/{path.name}" for group in groups & written for path in (lake / group).iterdir()}
    assert nested - set(CATALOG) == set()
    assert {"posts", "docs", "topics", "doc_themes", "summary.duckdb", "report.html"} <= written
    assert {"models/topics", "cache/embeddings"} <= nested


def test_prefect_home_in_a_missing_folder_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: with PREFECT_HOME under a folder that did not exist, the temporary server could not open its
    database, and `edumine run` hung for the whole startup timeout before failing."""
    from edumine.pipelines.prefect_env import configure_prefect

    home = tmp_path / "not" / "yet" / "prefect"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    configure_prefect()
    assert home.is_dir()
