from pathlib import Path

import pyarrow.compute as pc

from edumine.lake import Lake
from edumine.miners.base import ReadStats, Rejected
from edumine.miners.tabular import TabularSource
from edumine.pipelines.runner import run_collect

from conftest import make_config


def _count(lake: Path, source_label_community: str, source: str = "tabular.v1") -> int:
    posts = Lake(lake).read_posts(columns=["community", "source"])
    return int(pc.sum(pc.and_(pc.equal(posts["community"], source_label_community),
                              pc.equal(posts["source"], source))).as_py() or 0)


def test_all_four_corpora_ingest_with_exact_counts(default_lake: Path) -> None:
    lake = Lake(default_lake)
    posts = lake.read_posts(columns=["uid", "community", "source", "created_at"])
    assert posts.num_rows == 3518 + 920 + 1036 + 5100 + 260 + 1911 + 806
    assert len(set(posts["uid"].to_pylist())) == posts.num_rows
    from collections import Counter

    by_community = Counter(zip(posts["community"].to_pylist(), posts["source"].to_pylist()))
    assert by_community[("teachers", "tabular.v1")] == 1000
    assert by_community[("onlineeducation", "tabular.v1")] == 100
    assert by_community[("teaching", "tabular.v1")] == 1000 + 260 + 1911
    assert by_community[("teacherreality", "tabular.v1")] == 806


def test_2023_export_duplicates_collapse_to_derived_ids(default_lake: Path) -> None:
    import json

    manifest = sorted((default_lake / "runs").glob("*/manifest.json"))[-1]
    inputs = {item["label"]: item for item in json.loads(manifest.read_text())["inputs"]}
    scrape = inputs["praw-scrape-2023"]
    assert scrape["records"] == 3463 + 4030
    assert scrape["added"] == 1911 + 806
    assert scrape["duplicates"] == scrape["records"] - scrape["added"]
    posts = Lake(default_lake).read_posts(columns=["id", "source", "community"],
                                          filter=pc.field("community") == "teacherreality")
    assert all(i.startswith("h") and len(i) == 17 for i in posts["id"].to_pylist())


def test_rmhd_dates_and_missing_titles(default_lake: Path) -> None:
    posts = Lake(default_lake).read_posts(columns=["created_at", "title", "body", "author", "url"],
                                          filter=pc.field("month") == "2018-12")
    rmhd = [r for r in posts.to_pylist() if r["title"] is None and r["url"] is None]
    assert rmhd and all(r["created_at"].hour == 0 and r["body"] for r in rmhd)
    assert all(r["author"] is None or r["author"].startswith("a_") for r in rmhd)


def test_formats_bad_rows_and_missing_columns(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('id,created,text,sub\n1,1514764800,"hello ""there""",teaching\n'
                                    '2,not-a-time,x,teaching\n3,2018-01-02T10:00:00Z,three,teaching,EXTRA\n'
                                    '4,2018/01/03,four,\n')
    (tmp_path / "b.jsonl").write_text('{"id": 5, "created": 1514764800, "text": "five", "sub": "Teaching"}\n{oops\n')
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["6"], "created": ["2018-01-05"], "text": ["six"], "sub": ["teaching"]}),
                   tmp_path / "c.parquet")
    (tmp_path / "d.csv").write_text("identifier,when\n1,2\n")
    source = TabularSource(paths=[str(tmp_path / "*")], columns={"id": "id", "created": "created", "body": "text",
                                                                  "community": "sub"})
    stats = ReadStats()
    items = list(source.read(stats))
    records = {r["id"]: r for r in items if not isinstance(r, Rejected)}
    reasons = sorted(r.reason for r in items if isinstance(r, Rejected))
    assert set(records) == {"1", "5", "6"}
    assert records["1"]["body"] == 'hello "there"'
    assert reasons == ["bad_time", "invalid_json", "malformed_row", "missing_column", "missing_community"]


def test_rerun_adds_nothing_and_rewrites_nothing(tmp_path: Path) -> None:
    from conftest import CORPORA

    sources = [{"kind": "tabular.v1", "paths": [str(CORPORA / "reddit-teaching-2023" / "*.csv")],
                "columns": {"created": "created_utc", "title": "title", "body": "self_text",
                            "community": "subreddit"}}]
    config = make_config(tmp_path / "lake", sources)
    first = run_collect(config).inputs[0]
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "lake" / "posts").rglob("*.parquet")}
    second = run_collect(config).inputs[0]
    assert first["added"] == 2717 and second["added"] == 0 and second["updated"] == 0
    assert second["partitions_rewritten"] == 0
    assert files == {p: p.stat().st_mtime_ns for p in (tmp_path / "lake" / "posts").rglob("*.parquet")}
