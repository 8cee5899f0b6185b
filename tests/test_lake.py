import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from edumine.errors import LakeBusyError
from edumine.lake import Lake
from edumine.pipelines.runner import run_collect

from conftest import ROOT, TEST_KEY, make_config
from dumpfiles import comment, submission, write_zst


def dump_config(lake: Path, *patterns: str, chunk_rows: int = 50_000):
    # Files are reread on purpose here (the merge's rules): no skipping of unchanged files.
    return make_config(lake, [{"kind": "reddit.dumps.v1", "paths": list(patterns)}],
                       collect={"chunk_rows": chunk_rows, "skip_unchanged_files": False})


def rows(lake: Path) -> dict[str, dict]:
    return {r["uid"]: r for r in Lake(lake).read_posts().to_pylist()}


def test_newer_retrieval_replaces_older_and_older_never_wins(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_zst(tmp_path / "in" / "v1.zst", [submission("a", selftext="first", retrieved_on=100),
                                           submission("b", retrieved_on=100)])
    first = run_collect(dump_config(lake, str(tmp_path / "in" / "v1.zst"))).inputs[0]
    assert (first["added"], first["updated"]) == (2, 0)
    write_zst(tmp_path / "in" / "v2.zst", [submission("a", selftext="edited text", retrieved_on=200, edited=150.0)])
    second = run_collect(dump_config(lake, str(tmp_path / "in" / "v2.zst"))).inputs[0]
    assert (second["added"], second["updated"]) == (0, 1)
    assert rows(lake)["reddit:post:a"]["body"] == "edited text"
    third = run_collect(dump_config(lake, str(tmp_path / "in" / "v1.zst"))).inputs[0]
    assert (third["added"], third["updated"], third["duplicates"]) == (0, 0, 2)
    assert rows(lake)["reddit:post:a"]["body"] == "edited text"


def test_deletion_is_sticky_and_keeps_no_text(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_zst(tmp_path / "in" / "a.zst", [
        submission("p", title="my story", selftext="private details", retrieved_on=100),
        submission("q", selftext="[removed]"),
        comment("c", "p", body="[deleted]", author="[deleted]"),
        submission("r", _meta={"was_deleted_later": True}, selftext="gone later"),
    ])
    run_collect(dump_config(lake, str(tmp_path / "in" / "a.zst")))
    # A later retrieval says p was deleted; then an older copy with text turns up again.
    write_zst(tmp_path / "in" / "b.zst", [submission("p", selftext="[deleted]", author="[deleted]", retrieved_on=300)])
    run_collect(dump_config(lake, str(tmp_path / "in" / "b.zst")))
    write_zst(tmp_path / "in" / "c.zst", [submission("p", title="my story", selftext="private details",
                                                     retrieved_on=400)])
    run_collect(dump_config(lake, str(tmp_path / "in" / "c.zst")))
    stored = rows(lake)
    for uid, removal in [("reddit:post:q", "removed"), ("reddit:comment:c", "deleted"),
                         ("reddit:post:r", "deleted_later"), ("reddit:post:p", "deleted_later")]:
        assert stored[uid]["is_deleted"] and stored[uid]["removal"] == removal
        assert stored[uid]["title"] is None and stored[uid]["body"] is None
    assert stored["reddit:comment:c"]["author"] is None
    everything = b"".join(p.read_bytes() for p in (lake / "posts").rglob("*.parquet"))
    assert b"private details" not in everything and b"gone later" not in everything


def test_one_file_per_partition_and_hive_layout(default_lake: Path) -> None:
    files = list((default_lake / "posts").rglob("*.parquet"))
    assert all(f.name == "part-0.parquet" for f in files)
    parts = {f.parent.relative_to(default_lake / "posts").parts for f in files}
    assert ("platform=reddit", "community=teaching", "month=2017-07") in parts
    schema = pq.read_schema(files[0])
    assert "community" not in schema.names and "uid" in schema.names


def test_lock_refuses_a_second_writer(tmp_path: Path) -> None:
    first, second = Lake(tmp_path / "lake"), Lake(tmp_path / "lake")
    first.lock()
    try:
        with pytest.raises(LakeBusyError, match="another edumine run"):
            second.lock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()


def test_quarantine_rows_are_written_and_counted(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_zst(tmp_path / "in" / "bad.zst", [submission("a"), "{broken", '{"id": "z", "author": "SecretName"}'])
    ctx = run_collect(dump_config(lake, str(tmp_path / "in" / "bad.zst")))
    assert ctx.inputs[0]["quarantined"] == {"invalid_json": 1, "missing_community": 1}
    table = pq.read_table(next((lake / "quarantine" / ctx.run_id).glob("*.parquet")))
    assert sorted(table["reason"].to_pylist()) == ["invalid_json", "missing_community"]
    assert all(":" in loc for loc in table["location"].to_pylist())
    assert "SecretName" not in " ".join(table["excerpt"].to_pylist())


def _big_dump(path: Path, n: int) -> Path:
    return write_zst(path, [submission(f"k{i}", created=1514764800 + i * 3600,
                                       subreddit=("teaching", "education")[i % 2]) for i in range(n)])


def test_killed_run_then_rerun_gives_the_same_rows_as_a_clean_run(tmp_path: Path) -> None:
    dump = _big_dump(tmp_path / "in" / "big.zst", 60_000)
    clean = tmp_path / "clean"
    run_collect(dump_config(clean, str(dump), chunk_rows=2_000))
    expected = rows(clean)

    killed = tmp_path / "killed"
    script = ("import sys; from edumine.config import load_config; from edumine.pipelines.runner import run_collect;"
              f"run_collect(load_config(data={{'lake': {str(killed)!r}, 'collect': {{'chunk_rows': 2000}},"
              f"'privacy': {{'key_file': {str(tmp_path / 'k')!r}}},"
              f"'sources': [{{'kind': 'reddit.dumps.v1', 'paths': [{str(dump)!r}]}}]}}))")
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=TEST_KEY)
    # Kill once while staging, once while merging partitions into the lake.
    for marker, pattern in (("_staging", "chunk-*.arrow"), ("posts", "*.parquet")):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
        deadline = time.time() + 60
        while time.time() < deadline and not any((killed / marker).rglob(pattern)):
            time.sleep(0.005)
        if marker == "posts":
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = len(rows(killed)) if (killed / "posts").exists() else 0
    assert partial < len(expected)
    run_collect(dump_config(killed, str(dump), chunk_rows=2_000))
    after = rows(killed)
    assert after.keys() == expected.keys()
    strip = lambda r: {k: v for k, v in r.items() if k != "ingest_run"}  # noqa: E731
    assert all(strip(after[uid]) == strip(expected[uid]) for uid in expected)
    assert not (killed / "_staging").exists() and not list(killed.rglob(".tmp-*"))
