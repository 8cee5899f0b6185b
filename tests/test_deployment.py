"""The deployments in prefect.yaml, round trip: a real Prefect server on 127.0.0.1 (isolated PREFECT_HOME), a
process work pool, `prefect deploy --all`, a triggered run of each deployment, a worker that runs them, the
flow runs' final states, the scheduler's nightly runs, then the server stopped. Skips (saying why) when a
server cannot start here. Timings go to the log (pytest -o log_cli=true shows them)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import CORPORA, ROOT, TEST_KEY
from servers.reddit import RedditDouble

pytestmark = pytest.mark.prefect
log = logging.getLogger(__name__)
PREFECT = str(Path(sys.executable).with_name("prefect"))
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REDDIT_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_SERVER_UI_ENABLED="false",
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5", PREFECT_LOGGING_LEVEL="WARNING",
               EDUMINE_PSEUDONYM_KEY=TEST_KEY)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.perf_counter()
    process = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
                               env=env, stdout=open(home / "server.log", "w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.skip(f"the Prefect server exited at start (code {process.returncode}): "
                            f"{(home / 'server.log').read_text()[-1500:]}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.skip("the Prefect server did not answer /api/health within 120 s on this machine")
        log.info("prefect server up in %.1fs", time.perf_counter() - started)
        yield {"api": api, "env": {**env, "PREFECT_API_URL": api}, "home": home}
    finally:
        stopping = time.perf_counter()
        stop(process)
        log.info("prefect server stopped in %.1fs", time.perf_counter() - stopping)


def cli(server: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    result = subprocess.run([PREFECT, *args], cwd=ROOT, env=server["env"], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def tiny_config(work: Path, double: RedditDouble) -> Path:
    """One small tabular source and the Reddit double (credentials from a Prefect Secret block); no model stages."""
    from edumine import registry
    from edumine.config import config_model

    config_model()
    sections = {name: {"enabled": False} for name, model in registry.config_sections.items()
                if "enabled" in model.model_fields}
    data = {
        "lake": str(work / "lake"), "privacy": {"key_file": str(work / "key")},
        "sources": [
            {"kind": "tabular.v1", "name": "online-education",
             "paths": [str(CORPORA / "reddit-top-posts-2009-13" / "OnlineEducation.csv")],
             "columns": {"id": "id", "created": "created_utc", "title": "title", "body": "selftext",
                         "community": "subreddit"}},
            {"kind": "reddit.praw.v1", "name": "live", "subreddits": ["Teachers"], "credentials_block": "reddit-api",
             "backoff_seconds": 0.1, "praw": {"oauth_url": double.url, "reddit_url": double.url,
                                              "short_url": double.url, "timeout": 5}},
        ],
        **sections,
    }
    work.mkdir(parents=True, exist_ok=True)
    path = work / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# 45-85 s on the 2-core box (server start, pool, deploy, two flow runs): in the default suite, since the
# deployment round trip is what the nightly run depends on.
def test_prefect_yaml_deploys_triggers_and_completes(server: dict, tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    api, client = server["api"], httpx.Client(timeout=30)
    double = RedditDouble(client_id="vault-client", client_secret="vault-secret").start()
    double.seed("Teachers", 3, comments_per_post=2)
    worker = None
    try:
        clock = time.perf_counter()
        cli(server, "work-pool", "create", "edumine", "--type", "process")
        timings["create pool"] = time.perf_counter() - clock

        clock = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from prefect.blocks.system import Secret; import json; "
                        "Secret(value=json.dumps({'client_id': 'vault-client', 'client_secret': 'vault-secret'}))"
                        ".save('reddit-api', overwrite=True)"], env=server["env"], check=True, timeout=120)
        timings["save secret block"] = time.perf_counter() - clock

        clock = time.perf_counter()
        deployed = cli(server, "--no-prompt", "deploy", "--all")
        timings["prefect deploy --all"] = time.perf_counter() - clock
        assert "nightly" in deployed.stdout and "rerun" in deployed.stdout
        nightly = client.get(f"{api}/deployments/name/pipeline/nightly").json()
        rerun = client.get(f"{api}/deployments/name/pipeline/rerun").json()
        assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
        assert nightly["schedules"][0]["schedule"]["timezone"] == "UTC" and rerun["schedules"] == []
        assert nightly["parameters"]["config"] == "configs/live.yaml" and nightly["work_pool_name"] == "edumine"
        assert set(nightly["parameter_openapi_schema"]["properties"]) == {"config", "overrides", "task_runner",
                                                                          "dask_address"}
        assert nightly["parameters"]["task_runner"] == "default"

        runs = {}
        for name, deployment in (("nightly", nightly), ("rerun", rerun)):
            config = tiny_config(tmp_path / name, double)
            reply = client.post(f"{api}/deployments/{deployment['id']}/create_flow_run",
                                json={"parameters": {"config": str(config), "overrides": []}})
            assert reply.status_code == 201, reply.text
            runs[name] = reply.json()["id"]

        clock = time.perf_counter()
        worker_env = {k: v for k, v in server["env"].items() if not k.startswith("REDDIT_")}
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "edumine", "--limit", "2"], cwd=ROOT,
                                  env=worker_env, stdout=open(tmp_path / "worker.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        states: dict[str, str] = {}
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline and set(states) != set(runs):
            for name, run_id in runs.items():
                state = client.get(f"{api}/flow_runs/{run_id}").json()["state"]["type"]
                if state in TERMINAL:
                    states.setdefault(name, state)
                    timings.setdefault(f"flow run {name} (from worker start)", time.perf_counter() - clock)
            time.sleep(1)
        logs = (tmp_path / "worker.log").read_text()
        assert states == {"nightly": "COMPLETED", "rerun": "COMPLETED"}, logs[-4000:]

        for name in runs:
            manifest = json.loads(next((tmp_path / name / "lake" / "runs").glob("*/manifest.json")).read_text())
            assert manifest["status"] == "completed" and manifest["flow"] == "pipeline"
            added = {item["label"]: item["added"] for item in manifest["inputs"]}
            assert added == {"online-education": 100, "live": 9}
            assert "vault-secret" not in json.dumps(manifest) and "vault-secret" not in logs

        scheduled = client.post(f"{api}/flow_runs/filter", json={
            "deployments": {"id": {"any_": [nightly["id"]]}}, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        }).json()
        assert scheduled and all(run["expected_start_time"][11:16] == "02:00" for run in scheduled)
    finally:
        if worker is not None:
            stop(worker)
        double.stop()
        log.info("deployment round trip timings (s): %s", {k: round(v, 1) for k, v in timings.items()})
        (tmp_path / "timings.json").write_text(json.dumps(timings))


def test_dask_task_runner_collects_sources_concurrently_without_losing_rows(server: dict, tmp_path: Path) -> None:
    """Two live sources writing the same partition, collected at once on an in-process Dask cluster; the second
    one's credentials come from a Prefect Secret block."""
    doubles = [RedditDouble(client_id="c", client_secret="s", first_id=1_000_000).start(),
               RedditDouble(client_id="vault-c", client_secret="vault-s", first_id=2_000_000).start()]
    try:
        for n, double in enumerate(doubles):
            double.clock += n * 7                                        # distinct times, same months
            double.seed("Teachers", 6, comments_per_post=2, start=n * 10)
            double.inject(r"^/r/Teachers/new", "slow", delay=1.5)
        sources = [{"kind": "reddit.praw.v1", "name": f"live-{n}", "subreddits": ["Teachers"],
                    "praw": {"oauth_url": d.url, "reddit_url": d.url, "short_url": d.url}}
                   for n, d in enumerate(doubles)]
        sources[1]["credentials_block"] = "reddit-vault"              # wins over the environment's credentials
        subprocess.run([sys.executable, "-c", "from prefect.blocks.system import Secret; Secret(value="
                        "'{\"client_id\": \"vault-c\", \"client_secret\": \"vault-s\"}').save('reddit-vault', "
                        "overwrite=True)"], env=server["env"], check=True, timeout=120)
        config = tmp_path / "dask.yaml"
        config.write_text(yaml.safe_dump({"lake": str(tmp_path / "lake"), "sources": sources,
                                          "privacy": {"key_file": str(tmp_path / "key")}}))
        env = {**server["env"], "REDDIT_CLIENT_ID": "c", "REDDIT_CLIENT_SECRET": "s"}
        clock = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", "import json, sys; from edumine.pipelines.flows import "
                                 "collect_flow; print(json.dumps(collect_flow(sys.argv[1], task_runner='dask')))",
                                 str(config)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        log.info("collect flow on a Dask LocalCluster: %.1fs", time.perf_counter() - clock)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "DaskTaskRunner" in result.stderr or "dask" in result.stderr.lower()
        starts = [d.hits(r"^/r/Teachers/new")[0].at for d in doubles]
        assert abs(starts[0] - starts[1]) < 1.5                        # the slow listings overlapped
        from edumine.lake import Lake

        rows = Lake(tmp_path / "lake").read_posts(columns=["uid"]).column("uid").to_pylist()
        expected = {f"reddit:post:{p}" for d in doubles for p in d.posts} | \
            {f"reddit:comment:{c}" for d in doubles for c in d.comments}
        assert len(rows) == len(set(rows)) and set(rows) == expected and len(expected) == 2 * 6 * 3
        manifest = json.loads(next((tmp_path / "lake" / "runs").glob("*/manifest.json")).read_text())
        assert manifest["status"] == "completed" and sorted(i["label"] for i in manifest["inputs"]) == ["live-0",
                                                                                                       "live-1"]
    finally:
        for double in doubles:
            double.stop()


def test_a_detached_collection_task_rebuilds_its_context_from_the_config(tmp_path: Path) -> None:
    """What a Dask worker in another process runs: the same ingest, from the config alone."""
    from edumine.pipelines.task_runners import collect_source_detached

    config = tmp_path / "one.yaml"
    config.write_text(yaml.safe_dump({"lake": str(tmp_path / "lake"), "privacy": {"key_file": str(tmp_path / "key")},
                                      "sources": [{"kind": "tabular.v1", "paths": [str(
                                          CORPORA / "reddit-top-posts-2009-13" / "OnlineEducation.csv")],
                                          "columns": {"id": "id", "created": "created_utc", "title": "title",
                                                      "body": "selftext", "community": "subreddit"}}]}))
    report = collect_source_detached(str(config), [], "run-x", 0)
    assert report["detached"] and report["added"] == 100 and report["label"] == "0:tabular.v1"
    again = collect_source_detached(str(config), [], "run-y", 0)
    assert again["added"] == 0 and again["notes"]["unchanged_files"] == 1  # the same file is not read again
