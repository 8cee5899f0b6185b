import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.compute as pc
import pytest

from edumine.miners.base import ReadStats, Rejected
from edumine.miners.reddit_dumps import RedditDumpSource, normalise
from edumine.pipelines.runner import run_collect

from conftest import CORPORA, FIXTURES, make_config
from dumpfiles import comment, submission, write_zst

ERAS = FIXTURES / "pushshift-eras"


def read_all(source) -> tuple[list[dict], list[Rejected], ReadStats]:
    stats = ReadStats()
    items = list(source.read(stats))
    return [i for i in items if not isinstance(i, Rejected)], [i for i in items if isinstance(i, Rejected)], stats


def test_every_fixture_line_of_every_era_parses() -> None:
    records, rejected, stats = read_all(RedditDumpSource(paths=[str(ERAS / "*.ndjson")]))
    assert rejected == []
    assert len(records) == 52 == stats.total()["lines"]
    assert sum(r["kind"] == "post" for r in records) == 25
    years = {r["created_at"].year for r in records}
    assert {2005, 2007, 2009, 2012, 2014, 2019, 2020, 2024} <= years
    for record in records:
        assert record["uid"] == f"reddit:{record['kind']}:{record['id']}"
        assert record["created_at"].tzinfo is not None
        if record["kind"] == "comment":
            assert record["thread_uid"].startswith("reddit:post:")
            assert record["parent_uid"].split(":")[1] in ("post", "comment")
            assert record["url"].startswith("https://www.reddit.com/r/")


def test_era_quirks_are_normalised() -> None:
    lines = [json.loads(line) for line in (ERAS / "submissions.ndjson").read_text().splitlines()]
    string_time = next(o for o in lines if isinstance(o["created_utc"], str))
    assert normalise(string_time)["created_at"] == datetime.fromtimestamp(int(string_time["created_utc"]), timezone.utc)
    float_time = next(o for o in lines if isinstance(o["created_utc"], float))
    assert normalise(float_time)["created_at"].timestamp() == pytest.approx(float_time["created_utc"])
    edited_epoch = next(o for o in lines if isinstance(o["edited"], float))
    record = normalise(edited_epoch)
    assert record["is_edited"] and record["edited_at"].timestamp() == pytest.approx(edited_epoch["edited"])
    nameless = next(o for o in lines if "name" not in o)
    assert normalise(nameless)["id"] == nameless["id"]
    id_from_name = {k: v for k, v in lines[0].items() if k != "id"}
    assert normalise(id_from_name)["id"] == lines[0]["name"][3:]
    meta = next(o for o in lines if "_meta" in o)
    assert normalise(meta)["retrieved_at"].timestamp() == meta["_meta"]["retrieved_2nd_on"]
    deleted_later = dict(meta, _meta={**meta["_meta"], "was_deleted_later": True})
    assert normalise(deleted_later)["removal"] == "deleted_later"


def test_filters_by_subreddit_and_inclusive_dates(tmp_path: Path) -> None:
    dump = write_zst(tmp_path / "RS.zst", [
        submission("a", created=1514764800, subreddit="Teaching"),       # 2018-01-01 00:00
        submission("b", created=1514851199, subreddit="teaching"),       # 2018-01-01 23:59:59
        submission("c", created=1514851200, subreddit="teaching"),       # 2018-01-02 00:00
        submission("d", created=1514764800, subreddit="education"),
    ])
    source = RedditDumpSource(paths=[str(dump)], subreddits=["teaching"], since=datetime(2018, 1, 1).date(),
                              until=datetime(2018, 1, 1).date())
    records, rejected, stats = read_all(source)
    assert [r["id"] for r in records] == ["a", "b"]
    assert stats.total()["filtered"] == 2 and not rejected


def test_bad_lines_and_a_truncated_file_are_rejected_not_fatal(tmp_path: Path) -> None:
    good = write_zst(tmp_path / "good.zst", [
        submission("a"), "{not json", "[1, 2]", json.dumps({"id": "x", "subreddit": "teaching"}),
        json.dumps(submission("y", created="yesterday")), comment("c1", "a"),
    ])
    payload = b"".join(json.dumps(submission(f"t{i}")).encode() + b"\n" for i in range(2000))
    import zstandard

    compressed = zstandard.ZstdCompressor().compress(payload)
    (tmp_path / "truncated.zst").write_bytes(compressed[: len(compressed) // 2])
    records, rejected, _ = read_all(RedditDumpSource(paths=[str(tmp_path / "*.zst")]))
    reasons = sorted(r.reason for r in rejected)
    assert reasons == ["bad_time", "invalid_json", "missing_time", "not_an_object", "unreadable_file"]
    assert {r["id"] for r in records} >= {"a", "c1"}
    assert 0 < sum(r["id"].startswith("t") for r in records) < 2000  # what came before the damage is kept


def test_corpus_2017_18_ingests_with_exact_counts(default_lake: Path) -> None:
    from edumine.lake import Lake

    posts = Lake(default_lake).read_posts(columns=["uid", "kind", "community", "source"])
    dumps = posts.filter(pc.equal(posts["source"], "reddit.dumps.v1"))
    counts = {(c, k): 0 for c in ("teaching", "teachingresources") for k in ("post", "comment")}
    for community, kind in zip(dumps["community"].to_pylist(), dumps["kind"].to_pylist()):
        counts[(community, kind)] += 1
    assert counts == {("teaching", "post"): 3518, ("teaching", "comment"): 0,
                      ("teachingresources", "post"): 920, ("teachingresources", "comment"): 1036}


def test_subreddit_filter_on_the_real_dump(tmp_path: Path) -> None:
    sources = [{"kind": "reddit.dumps.v1", "paths": [str(CORPORA / "reddit-teaching-2017-18" / "*.zst")],
                "subreddits": ["teachingresources"], "since": "2018-01-01"}]
    ctx = run_collect(make_config(tmp_path / "lake", sources))
    report = ctx.inputs[0]
    assert report["filtered"] > 3518  # every r/teaching post and the 2017 teachingresources records
    assert report["added"] == report["records"] > 0
    posts = ctx.lake.read_posts(columns=["community", "created_at"])
    assert set(posts["community"].to_pylist()) == {"teachingresources"}
    assert min(posts["created_at"].to_pylist()).year == 2018
