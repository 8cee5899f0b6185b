"""One username planted in every field of every source format, then `edumine run` (the Prefect flow, every stage):
no byte the run writes (lake, quarantine, manifests, caches, models, store, report, logs, Prefect's own store)
may hold it, in any letter case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import CORPORA, ROOT, TEST_KEY, make_config
from dumpfiles import comment, submission, write_zst
from edumine.pipelines.runner import run_collect
from edumine.privacy import Pseudonymiser

pytestmark = pytest.mark.prefect

NAME = "PlantedTeacher42"
MENTION = f"thanks u/{NAME} and /u/{NAME.lower()}, see https://www.reddit.com/user/{NAME}/ and r/u_{NAME}"
DAY = 1514764800  # 2018-01-01


def _dump(folder: Path) -> Path:
    return write_zst(folder / "planted_RS.zst", [
        submission("pl1", created=DAY, author=NAME, title=f"Question for u/{NAME}", selftext=MENTION,
                   link_flair_text=f"Flair by u/{NAME}", author_flair_text=f"u/{NAME}",
                   url=f"https://www.reddit.com/user/{NAME}/comments/pl1/x"),
        comment("pc1", "pl1", created=DAY + 60, author=NAME, body=MENTION, author_flair_text=NAME),
        submission("pl2", created=DAY + 120, subreddit=f"u_{NAME}", author=NAME, title="my profile post",
                   selftext=MENTION, permalink=f"/r/u_{NAME}/comments/pl2/x/"),
        submission("pl3", created="not a time", author=NAME, selftext=MENTION),          # bad_time
        f'{{"id": "pl4", "author": "{NAME}", "subreddit": ',                             # invalid JSON
        f'{{"id": "pl5", "subreddit": "teaching", "author": "{NAME}',                     # cut inside the name
    ])


def _tables(folder: Path) -> dict[str, Path]:
    rows = [{"id": "t1", "created": "2018-01-02", "title": f"hi u/{NAME}", "body": MENTION, "sub": "teaching",
             "user": NAME, "link": f"https://reddit.com/u/{NAME}"},
            {"id": "t2", "created": "2018-01-03", "title": "profile", "body": MENTION, "sub": f"u_{NAME}",
             "user": NAME, "link": None},
            {"id": "t3", "created": "whenever", "title": "bad time", "body": MENTION, "sub": "teaching",
             "user": NAME, "link": None}]
    frame = pd.DataFrame(rows)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "planted.csv"
    frame.to_csv(csv_path, index=False)
    with open(csv_path, "a", encoding="utf-8") as handle:  # a malformed row: too many fields
        handle.write(f"t4,2018-01-04,extra,{NAME},{NAME},teaching,{NAME},more\n")
    jsonl_path = folder / "planted.jsonl"
    frame.to_json(jsonl_path, orient="records", lines=True)
    parquet_path = folder / "planted.parquet"
    frame.to_parquet(parquet_path)
    return {"csv": csv_path, "jsonl": jsonl_path, "parquet": parquet_path}


def _tabular(name: str, path: Path) -> dict:
    return {"kind": "tabular.v1", "name": name, "paths": [str(path)],
            "columns": {"id": "id", "created": "created", "title": "title", "body": "body", "community": "sub",
                        "author": "user", "url": "link"}}


def _every_written_byte(*roots: Path) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for root in roots for path in root.rglob("*") if path.is_file()]


def test_a_planted_name_reaches_no_output(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    tables = _tables(inputs)
    work = tmp_path / "work"
    config = {
        "lake": str(work / "lake"),
        "privacy": {"key_file": str(work / "key"), "user_profiles": "pseudonymise"},
        "sources": [
            {"kind": "reddit.dumps.v1", "name": "real",
             "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_submissions.zst")]},
            {"kind": "reddit.dumps.v1", "name": "planted-dump", "paths": [str(_dump(inputs))]},
            *(_tabular(f"planted-{fmt}", path) for fmt, path in tables.items()),
        ],
        "themes": {"classifier": "themes.tfidf_logreg.v1", "eval_folds": 0,
                   "model_dir": str(work / "models"), "cache_dir": str(work / "cache"),
                   "imported_labels": str(work / "labels" / "imported.jsonl")},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=TEST_KEY, PREFECT_HOME=str(work / "prefect"))
    env.pop("PREFECT_API_URL", None)
    result = subprocess.run([sys.executable, "-m", "edumine.cli", "run", "--config", str(tmp_path / "config.yaml")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    manifest = json.loads(next((work / "lake" / "runs").glob("*/manifest.json")).read_text())
    inputs_by_label = {item["label"]: item for item in manifest["inputs"]}
    assert inputs_by_label["planted-dump"]["quarantined"] == {"bad_time": 1, "invalid_json": 2}
    assert inputs_by_label["planted-csv"]["quarantined"] == {"bad_time": 1, "malformed_row": 1}
    for fmt in ("jsonl", "parquet"):
        assert inputs_by_label[f"planted-{fmt}"]["quarantined"] == {"bad_time": 1}
    assert {"store", "report"} <= set(manifest["outputs"])

    written = _every_written_byte(work, tmp_path / "config.yaml")
    assert len(written) > 20 and any(path.name == "report.html" for path, _ in written)
    leaks = [str(path) for path, data in written if NAME.lower().encode() in data.lower()]
    assert not leaks, f"the planted name is in {leaks}"
    logs = (result.stdout + result.stderr).lower()
    assert NAME.lower() not in logs

    # The name is replaced, not lost: the same pseudonym stands for the person wherever they were.
    pseudonym = Pseudonymiser(TEST_KEY.encode()).author(NAME)
    posts = pd.read_parquet(work / "lake" / "posts")
    planted = posts[posts["id"].isin(["pl1", "pc1", "pl2", "t1", "t2"])]
    assert set(planted["author"]) == {pseudonym}
    assert f"u_{pseudonym}" in set(posts["community"].astype(str))
    assert (planted["body"].str.count(pseudonym) >= 2).all()
    assert posts.loc[posts["id"] == "pl1", "flair"].item() == f"Flair by u/{pseudonym}"


def test_user_profiles_are_left_out_by_default_and_counted(tmp_path: Path) -> None:
    sources = [{"kind": "reddit.dumps.v1", "paths": [str(_dump(tmp_path / "in"))]}]
    ctx = run_collect(make_config(tmp_path / "lake", sources))
    report = ctx.inputs[0]
    assert report["added"] == 2 and report["notes"]["user_profile_records_left_out"] == 1
    assert report["filtered"] == 1
    communities = set(ctx.lake.read_posts(columns=["community"]).column("community").to_pylist())
    assert communities == {"teaching"}
