"""The heavy stages on Dask: `edumine run --task-runner dask` runs preprocessing, embedding and theme scoring as
Prefect tasks on a LocalCluster of two worker processes, and writes the same tables as the in-process run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CORPORA, ROOT, SHARED_MODELS, TEST_KEY

sys.path.insert(0, str(ROOT / "scripts"))
from compare_lakes import RUN_COLUMNS, compare  # noqa: E402

# The default stages and backends, but the theme model trained once and shared (as tests/test_flows.py does).
STAGES = ["--set", "themes.classifier=themes.tfidf_logreg.v1", "--set", "themes.eval_folds=0",
          "--set", f"themes.model_dir={SHARED_MODELS / 'themes'}"]


def _run(work: Path, name: str, *options: str) -> subprocess.CompletedProcess:
    folder = work / name
    folder.mkdir()
    config = {"lake": str(folder / "lake"), "privacy": {"key_file": str(work / "key")},
              "sources": [
                  {"kind": "reddit.dumps.v1", "name": "resources",
                   "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_*.zst")]},
                  {"kind": "tabular.v1", "name": "rmhd", "paths": [str(CORPORA / "reddit-teaching-2018-19" / "*.csv")],
                   "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}}]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=TEST_KEY, PREFECT_HOME=str(folder / "prefect"),
               EDUMINE_DASK_WORKERS="2")
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "edumine.cli", "run", "--config", str(folder / "config.yaml"),
                           *STAGES, *options], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
@pytest.mark.prefect
def test_the_dask_run_writes_the_tables_of_the_in_process_run(tmp_path: Path, capsys) -> None:
    plain = _run(tmp_path, "plain")
    assert plain.returncode == 0, plain.stderr[-3000:]
    dask = _run(tmp_path, "dask", "--task-runner", "dask")
    assert dask.returncode == 0, dask.stderr[-3000:]
    # The per-partition work ran as Prefect tasks on the cluster's worker processes, not in the flow's.
    assert "distributed.nanny" in dask.stderr and "distributed.nanny" not in plain.stderr
    for step in ("preprocess", "embed", "themes"):
        assert f"Task run '{step}-0" in dask.stderr and f"Task run '{step}-1" in dask.stderr, step
        assert f"Task run '{step}-" not in plain.stderr
    manifests = [json.loads(next((tmp_path / name / "lake" / "runs").glob("*/manifest.json")).read_text())
                 for name in ("plain", "dask")]
    assert [m["status"] for m in manifests] == ["completed", "completed"]
    assert manifests[1]["outputs"]["task_runner"] == {"kind": "dask", "workers": 2, "address": "local cluster"}
    assert "task_runner" not in manifests[0]["outputs"]
    assert manifests[1]["outputs"]["preprocess"]["processed"] == manifests[0]["outputs"]["preprocess"]["processed"] > 0
    assert manifests[1]["outputs"]["topics"]["embedding"]["embedded"] > 0
    assert manifests[1]["outputs"]["themes"]["scored_now"] == manifests[0]["outputs"]["themes"]["scored_now"] > 0

    capsys.readouterr()
    same = compare(tmp_path / "plain" / "lake", tmp_path / "dask" / "lake", RUN_COLUMNS, {})
    lines = capsys.readouterr().out.splitlines()
    assert same, "\n".join(lines)
    checked = {line.split(":")[0] for line in lines}
    assert {"docs", "doc_topics", "topics", "topic_prevalence", "doc_themes", "theme_prevalence"} <= checked
