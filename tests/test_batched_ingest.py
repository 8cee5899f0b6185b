"""The batched ingest (miners/batches.py: Arrow columns, vectorised pseudonymisation, worker processes) writes
the same lake, row for row, and the same quarantine as the record-at-a-time loop it replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from edumine.lake import Lake
from edumine.miners.ingest import ingest_source
from edumine.miners.reddit_dumps import RedditDumpSource
from edumine.privacy import Pseudonymiser

from conftest import FIXTURES, TEST_KEY
from dumpfiles import comment, submission, write_zst

ERAS = FIXTURES / "pushshift-eras"


def era_lines() -> list[str]:
    return [line for name in ("submissions.ndjson", "comments.ndjson")
            for line in (ERAS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def awkward_lines() -> list[str]:
    """What the eras' real lines lack: every kind of bad line, profiles, mentions, deletions, versions."""
    real = [json.loads(line) for line in era_lines()]
    post = real[0]
    later = dict(post, retrieved_on=(post.get("retrieved_on") or 1600000000) + 10, score=99)  # a newer version
    return [
        "{not json", "[1, 2]", "", "   ",
        json.dumps(submission("t1", created="soon")),                        # bad_time in the dump reader
        json.dumps(submission("t2", created=32503680000)),                  # year 3000: bad_time in records.py
        json.dumps({k: v for k, v in submission("t3").items() if k != "created_utc"}),
        json.dumps(submission("t4", author=12345, title=7)),                 # coerced to text
        json.dumps(submission("t5", score=2**70)),                           # bad_field:score
        json.dumps(submission("t6", subreddit="u_SomeTeacher")),             # a user profile: left out
        json.dumps(submission("t7", selftext="thanks u/Alice_T and /user/bob-99, see reddit.com/u/carol_x")),
        json.dumps(submission("t8", selftext="[removed]")),
        json.dumps(comment("c1", "t7", body=" [deleted] ")),
        json.dumps(comment("c2", "t7", author="[deleted]", body="r/u_SomeTeacher said so")),
        json.dumps(submission("t9", subreddit="Teaching", title="x\udcff lone surrogate")),
        json.dumps(submission("t10", author=["a", "list"])),            # bad_field:author in records.py
        json.dumps(later),
        json.dumps(submission("t7", score=5, retrieved_on=1500000000)),      # an older version of t7
    ]


def ingest(tmp_path: Path, name: str, paths: list[str], **options) -> tuple[Lake, dict]:
    lake = Lake(tmp_path / name)
    report = ingest_source(RedditDumpSource(paths=paths), label="dumps", kind="reddit.dumps.v1", lake=lake,
                           run_id="run-1", pseudonymiser=Pseudonymiser(TEST_KEY.encode()), chunk_rows=7,
                           **options)
    data = report.as_dict()
    data.pop("seconds")
    return lake, data


def posts(lake: Lake) -> list[tuple[str, list[dict]]]:
    """Every partition's file, in path order, row for row."""
    return [(str(path.relative_to(lake.posts)), pa.parquet.read_table(path).to_pylist())
            for path in sorted(lake.posts.rglob("*.parquet"))]


def quarantine(lake: Lake) -> list[dict]:
    table = ds.dataset(lake.quarantine, format="parquet").to_table()
    return table.drop_columns(["quarantined_at"]).to_pylist()


@pytest.fixture()
def inputs(tmp_path: Path) -> list[str]:
    lines = era_lines() + awkward_lines()
    write_zst(tmp_path / "in" / "RS_mixed.zst", lines)
    (tmp_path / "in" / "RC_plain.ndjson").write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8",
                                                     errors="surrogatepass")
    whole = write_zst(tmp_path / "in" / "RS_cut.zst", lines * 3).read_bytes()
    (tmp_path / "in" / "RS_cut.zst").write_bytes(whole[: len(whole) * 2 // 3])  # a file cut short
    return [str(tmp_path / "in" / "*")]


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_lake_equals_record_at_a_time(tmp_path: Path, inputs: list[str], workers: int) -> None:
    reference, expected = ingest(tmp_path, "one-by-one", inputs, batched=False)
    batched, report = ingest(tmp_path, "batched", inputs, batched=True, workers=workers)
    assert report == expected
    assert posts(batched) == posts(reference)
    assert quarantine(batched) == quarantine(reference)
    # The comparison has teeth: every era, every kind of rejection, a truncated file, versions and profiles.
    assert expected["added"] > 50 and expected["duplicates"] > 0
    assert {"invalid_json", "not_an_object", "bad_time", "missing_time", "bad_field:score", "bad_field:author",
            "unreadable_file"} <= set(expected["quarantined"])
    assert expected["notes"]["user_profile_records_left_out"] >= 3
    rows = [row for _, part in posts(batched) for row in part]
    assert any(row["removal"] == "removed" and row["body"] is None for row in rows)
    mentions = next(row["body"] for row in rows if row["id"] == "t7")
    assert "Alice_T" not in mentions and "bob-99" not in mentions and "carol_x" not in mentions


def test_small_dumps_are_read_without_workers_unless_configured(tmp_path: Path) -> None:
    import inspect

    from edumine.miners.batches import default_workers

    assert inspect.signature(ingest_source).parameters["batched"].default is True

    small = write_zst(tmp_path / "RS_small.zst", [json.dumps(submission("s1"))])
    assert default_workers(RedditDumpSource(paths=[str(small)])) == 0
    assert default_workers(RedditDumpSource(paths=[str(small)], workers=3)) == 3
