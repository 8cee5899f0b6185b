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
from test_deployment import server  # noqa: E402,F401  (a real Prefect server, module-scoped)

# The default stages and backends, but the theme model trained once and shared (as tests/test_flows.py does).
STAGES = ["--set", "themes.classifier=themes.tfidf_logreg.v1", "--set", "themes.eval_folds=0",
          "--set", f"themes.model_dir={SHARED_MODELS / 'themes'}"]


def _run(work: Path, name: str, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    folder = work / name
    folder.mkdir()
    config = {"lake": str(folder / "lake"), "privacy": {"key_file": str(work / "key")},
              "sources": [
                  {"kind": "reddit.dumps.v1", "name": "resources",
                   "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_*.zst")]},
                  {"kind": "tabular.v1", "name": "rmhd", "paths": [str(CORPORA / "reddit-teaching-2018-19" / "*.csv")],
                   "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}}]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if env is None:  # no Prefect server configured: each run starts a temporary one
        env = dict(os.environ, PREFECT_HOME=str(folder / "prefect"))
        env.pop("PREFECT_API_URL", None)
    env = {**env, "EDUMINE_PSEUDONYM_KEY": TEST_KEY, "EDUMINE_DASK_WORKERS": "2"}
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


@pytest.mark.slow
@pytest.mark.prefect
def test_a_run_on_a_separate_dask_cluster_reads_models_from_the_lake(server: dict, tmp_path: Path) -> None:
    """`--dask-address`: a scheduler and two worker processes started on their own (as on a real cluster), with
    the Prefect server's address and the pseudonym key in their environment (collection runs there too) and
    nothing from the flow's memory; the run's tables equal an in-process run's."""
    from test_deployment import free_port, stop

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**server["env"], "EDUMINE_PSEUDONYM_KEY": TEST_KEY}
    dask = str(Path(sys.executable).with_name("dask"))
    cluster = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                 "--dashboard-address", ":0"], env=env, cwd=tmp_path, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "scheduler.log", "w"))]
    try:
        cluster.append(subprocess.Popen([dask, "worker", address, "--nworkers", "2", "--nthreads", "1",
                                         "--dashboard-address", ":0"], env=env, cwd=tmp_path,
                                        start_new_session=True, stdout=subprocess.DEVNULL,
                                        stderr=open(tmp_path / "workers.log", "w")))
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=180)
        plain = _run(tmp_path, "plain")
        assert plain.returncode == 0, plain.stderr[-3000:]
        remote = _run(tmp_path, "remote", "--dask-address", address, env=server["env"])
        assert remote.returncode == 0, remote.stderr[-3000:]
    finally:
        for process in reversed(cluster):
            stop(process)
    manifest = json.loads(next((tmp_path / "remote" / "lake" / "runs").glob("*/manifest.json")).read_text())
    assert manifest["status"] == "completed"
    assert manifest["outputs"]["task_runner"] == {"kind": "dask", "workers": 2, "address": address}
    import httpx

    # The partition tasks ran on the cluster and reported to the server (its log level hides them from stderr).
    for step in ("preprocess", "embed", "themes"):
        runs = httpx.post(f"{server['api']}/task_runs/filter", timeout=30,
                          json={"task_runs": {"name": {"like_": f"{step}-"}}}).json()
        assert {run["state_type"] for run in runs} == {"COMPLETED"} and len(runs) >= 2, (step, runs[:1])
    import io
    from contextlib import redirect_stdout

    shown = io.StringIO()
    with redirect_stdout(shown):
        same = compare(tmp_path / "plain" / "lake", tmp_path / "remote" / "lake", RUN_COLUMNS, {})
    assert same, shown.getvalue()
