"""``edumine collect`` runs in process unless a Prefect server is named: no temporary server (20-40 s of a
command that collects in seconds), the same manifest and lake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, TEST_KEY
from dumpfiles import comment, submission, write_zst


def test_collect_without_a_prefect_server_runs_in_process(tmp_path: Path) -> None:
    dump = write_zst(tmp_path / "RS_small.zst", [submission("s1"), submission("s2", subreddit="u_Someone"),
                                                 comment("c1", "s1"), "{not json"])
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"lake": str(tmp_path / "lake"), "sources": [{"kind": "reddit.dumps.v1",
                                                                                "paths": [str(dump)]}]}))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(EDUMINE_PSEUDONYM_KEY=TEST_KEY, PREFECT_HOME=str(tmp_path / "prefect"))
    result = subprocess.run([sys.executable, "-m", "edumine.cli", "collect", "--config", str(config)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "temporary server" not in result.stderr and "flow run" not in result.stderr
    manifest = json.loads(next((tmp_path / "lake" / "runs").glob("*/manifest.json")).read_text())
    assert manifest["status"] == "completed" and manifest["flow"] == "collect"
    source = manifest["inputs"][0]
    left_out = source["notes"]["user_profile_records_left_out"]
    assert (source["records"], source["quarantined_total"], left_out) == (2, 1, 1)
    assert "manifest:" in result.stdout
    assert not (tmp_path / "prefect" / "prefect.db").exists()  # a temporary server would have created it

