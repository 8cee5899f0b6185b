"""One row per uid across the whole lake, newest truth wins (issue 16 item 4)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pyarrow.compute as pc

from edumine.lake import Lake
from edumine.pipelines.runner import run_collect

from conftest import make_config
from dumpfiles import submission, write_zst

JAN, MAR = 1514764800, 1519862400  # 2018-01-01, 2018-03-01


def _dump(lake: Path, path: Path, **collect):
    return make_config(lake, [{"kind": "reddit.dumps.v1", "paths": [str(path)]}], collect=collect or {})


def _where(lake: Path) -> dict[str, list[tuple[str, str]]]:
    table = Lake(lake).read_posts(columns=["uid", "community", "month"])
    found: dict[str, list[tuple[str, str]]] = {}
    for uid, community, month in zip(*(table[c].to_pylist() for c in ("uid", "community", "month"))):
        found.setdefault(uid, []).append((community, month))
    return found


def test_a_record_retrieved_later_with_another_month_and_community_moves(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = write_zst(tmp_path / "in" / "a.zst", [submission("m", created=JAN, retrieved_on=1600000000),
                                                  submission("stay", created=JAN)])
    run_collect(_dump(lake, first))
    assert _where(lake)["reddit:post:m"] == [("teaching", "2018-01")]
    later = write_zst(tmp_path / "in" / "b.zst", [submission("m", created=MAR, subreddit="Education",
                                                             retrieved_on=1700000000, selftext="moved")])
    report = run_collect(_dump(lake, later)).inputs[0]
    where = _where(lake)
    assert where["reddit:post:m"] == [("education", "2018-03")]  # one row, in its new partition
    assert where["reddit:post:stay"] == [("teaching", "2018-01")]
    assert (report["added"], report["updated"]) == (0, 1)
    assert Lake(lake).count_posts() == 2
    # An older retrieval of the old place does not move it back.
    stale = write_zst(tmp_path / "in" / "c.zst", [submission("m", created=JAN, retrieved_on=1650000000)])
    report = run_collect(_dump(lake, stale)).inputs[0]
    assert _where(lake)["reddit:post:m"] == [("education", "2018-03")]
    assert (report["added"], report["updated"], report["duplicates"]) == (0, 0, 1)


def test_a_partition_left_empty_by_a_move_disappears(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run_collect(_dump(lake, write_zst(tmp_path / "in" / "a.zst", [submission("m", created=JAN)])))
    run_collect(_dump(lake, write_zst(tmp_path / "in" / "b.zst",
                                      [submission("m", created=MAR, retrieved_on=1700000000)])))
    parts = sorted(p.relative_to(lake / "posts").as_posix() for p in (lake / "posts").rglob("*.parquet"))
    assert parts == ["platform=reddit/community=teaching/month=2018-03/part-0.parquet"]


def test_a_move_within_one_run_and_a_deletion_elsewhere_stay_sticky(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run_collect(_dump(lake, write_zst(tmp_path / "in" / "a.zst",
                                      [submission("d", created=JAN, selftext="[deleted]", retrieved_on=1600000000)])))
    run_collect(_dump(lake, write_zst(tmp_path / "in" / "b.zst",
                                      [submission("d", created=MAR, selftext="text again", retrieved_on=1700000000)]),
                      chunk_rows=100))
    row = Lake(lake).read_posts().to_pylist()
    assert len(row) == 1 and row[0]["is_deleted"] and row[0]["body"] is None and row[0]["month"] == "2018-03"


def test_a_csv_copy_of_a_dump_row_does_not_wipe_its_url_and_counts(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rows = [submission(f"c{i}", created=JAN + i * 60, num_comments=7 + i, retrieved_on=1600000000)
            for i in range(5)]
    dump = write_zst(tmp_path / "in" / "d.zst", rows)
    copy = tmp_path / "in" / "copy.csv"
    with open(copy, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "created_utc", "title", "selftext", "subreddit"])
        for row in rows:
            writer.writerow([row["id"], row["created_utc"], row["title"], row["selftext"], row["subreddit"]])
    os.utime(copy, (1700000000, 1700000000))  # the copy's file is newer than the dump's retrieval
    tabular = {"kind": "tabular.v1", "paths": [str(copy)],
               "columns": {"id": "id", "created": "created_utc", "title": "title", "body": "selftext",
                           "community": "subreddit"}}
    dump_source = {"kind": "reddit.dumps.v1", "paths": [str(dump)]}
    for order in ([dump_source, tabular], [tabular, dump_source]):  # whichever comes first
        target = tmp_path / f"lake-{order[0]['kind']}"
        ctx = run_collect(make_config(target, order))
        stored = Lake(target).read_posts().to_pylist()
        assert len(stored) == 5
        assert all(r["url"] and r["num_comments"] >= 7 and r["source"] == "reddit.dumps.v1" for r in stored)
        assert sum(i["added"] for i in ctx.inputs) == 5 and ctx.outputs["posts_rows"] == 5
    # With `file_time_is_estimate: false` the file time counts as a real retrieval, and the newer copy wins.
    trusting = tmp_path / "lake-trusting"
    run_collect(make_config(trusting, [dump_source, {**tabular, "file_time_is_estimate": False}]))
    stored = Lake(trusting).read_posts().to_pylist()
    assert all(r["source"] == "tabular.v1" and r["num_comments"] is None for r in stored)


def test_estimated_versions_still_order_among_themselves(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    paths = []
    for number, title in enumerate(("old", "new")):
        path = tmp_path / "in" / f"{title}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"id,created,title\nx,{JAN},{title}\n")
        os.utime(path, (1700000000 + number, 1700000000 + number))
        paths.append(path)
    for path in paths:
        run_collect(make_config(lake, [{"kind": "tabular.v1", "paths": [str(path)], "community": "teaching",
                                        "columns": {"id": "id", "created": "created", "title": "title"}}]))
    table = Lake(lake).read_posts()
    assert table.num_rows == 1 and table["title"].to_pylist() == ["new"]
    assert pc.all(table["retrieval_estimated"]).as_py()
