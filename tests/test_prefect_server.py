"""`edumine` stops the temporary Prefect server it started: on SIGTERM, and after a SIGKILL at the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import CORPORA, ROOT, TEST_KEY

pytestmark = pytest.mark.prefect

MARKER = "prefect.server.api.server:create_app"


def _servers_of(prefect_home: Path) -> list[int]:
    """Temporary Prefect servers running with this PREFECT_HOME (so only this test's)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split(")", 1)[1].split()[0]
        except OSError:
            continue
        if MARKER in cmdline and f"PREFECT_HOME={prefect_home}".encode() in environ and state != "Z":
            found.append(int(proc.name))
    return found


def _edumine_run(work: Path, kill_at: str) -> subprocess.CompletedProcess:
    config = {"lake": str(work / "lake"), "privacy": {"key_file": str(work / "key")},
              "sources": [{"kind": "reddit.dumps.v1",
                           "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_submissions.zst")]}]}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=TEST_KEY, PREFECT_HOME=str(work / "prefect"), EDUMINE_KILL_AT=kill_at)
    env.pop("PREFECT_API_URL", None)
    # Output to files, not pipes: a server left running would hold a pipe open and the wait would never end.
    # SIGINT back to its default in the child: a test run started in the background by a shell without job control
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler (the INT case ran to the end).
    with open(work / "stdout", "w") as out, open(work / "stderr", "w") as err:
        code = subprocess.run([sys.executable, "-m", "edumine.cli", "run", "--config", str(work / "config.yaml")],
                              cwd=ROOT, env=env, stdout=out, stderr=err, timeout=600,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)).returncode
    return subprocess.CompletedProcess([], code, (work / "stdout").read_text(), (work / "stderr").read_text())


def _wait_gone(home: Path, seconds: float = 15) -> list[int]:
    deadline = time.time() + seconds
    while (left := _servers_of(home)) and time.time() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.parametrize("signame", ["TERM", "INT"])
def test_sigterm_or_sigint_stops_the_temporary_server_and_marks_the_run_interrupted(tmp_path: Path,
                                                                                   signame: str) -> None:
    result = _edumine_run(tmp_path, f"stage.collect.after:{signame}")
    assert result.returncode != 0 and "Traceback" not in result.stderr[-2000:] or signame == "INT", \
        result.stderr[-3000:]
    if signame == "TERM":
        assert result.returncode == 128 + 15, result.stderr[-3000:]
    assert _wait_gone(tmp_path / "prefect") == []
    # Regression: the signal handler stopped the server before Prefect's API log worker had drained, and the
    # worker then retried the dead server for about a minute before the process could exit.
    assert "Error logging to API" not in result.stderr, result.stderr[-3000:]
    manifest = json.loads(next((tmp_path / "lake" / "runs").glob("*/manifest.json")).read_text())
    assert manifest["status"] == "interrupted"
    assert not list((tmp_path / "prefect" / "edumine-servers").glob("*.json"))


def test_a_server_left_by_a_sigkill_is_stopped_by_the_next_edumine(tmp_path: Path) -> None:
    result = _edumine_run(tmp_path, "stage.collect.after")
    assert result.returncode == -9
    home = tmp_path / "prefect"
    left = _servers_of(home)
    assert left, "the SIGKILLed run left no server: nothing to test"
    env = dict(os.environ, PREFECT_HOME=str(home))
    subprocess.run([sys.executable, "-c", "from edumine.pipelines.prefect_env import reap_orphans; reap_orphans()"],
                   cwd=ROOT, env=env, check=True, timeout=60)
    assert _wait_gone(home) == []
    assert not list((home / "edumine-servers").glob("*.json"))


def test_no_early_server_where_a_profile_names_one(tmp_path: Path) -> None:
    """``start_server_early`` launches the temporary server before Prefect is imported; where Prefect's own
    settings (here the active profile) name an API server, that launch is stopped again and nothing is left."""
    home = tmp_path / "prefect"
    home.mkdir()
    (home / "profiles.toml").write_text('active = "remote"\n\n[profiles.remote]\n'
                                        'PREFECT_API_URL = "http://127.0.0.1:9/api"\n')
    env = dict(os.environ, PREFECT_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_PROFILE", None)
    script = ("from edumine.pipelines.prefect_env import configure_prefect, start_server_early\n"
              "configure_prefect()\nprint(start_server_early())\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "None", out.stdout + out.stderr
    assert _wait_gone(home) == []
    assert not list((home / "edumine-servers").glob("*.json"))
