"""reddit.arcticshift.v1 with real httpx against the local Arctic Shift double (tests/servers/arcticshift.py)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import make_config
from servers.arcticshift import ArcticShiftDouble


@pytest.fixture
def arctic():
    double = ArcticShiftDouble().start()
    yield double
    double.stop()
    assert not double.errors, double.errors[0]


def source(double: ArcticShiftDouble, **extra: object) -> dict:
    since = datetime.fromtimestamp(time.time() - 25 * 86400, timezone.utc).date().isoformat()
    return {"kind": "reddit.arcticshift.v1", "name": "arctic", "subreddits": ["Teachers"], "since": since,
            "base_url": double.url, "requests_per_minute": 6000, "backoff_seconds": 0.05, **extra}


def collect(lake: Path, *sources: dict) -> dict:
    from edumine.pipelines.runner import run_collect

    ctx = run_collect(make_config(lake, list(sources)))
    return json.loads(ctx.manifest_path.read_text())


def world_uids(double: ArcticShiftDouble, subreddit: str = "Teachers") -> set[str]:
    return {f"reddit:post:{p['id']}" for p in double.posts if p["subreddit"] == subreddit} | \
        {f"reddit:comment:{c['id']}" for c in double.comments if c["subreddit"] == subreddit}


def lake_rows(lake: Path) -> dict[str, dict]:
    from edumine.lake import Lake

    rows = Lake(lake).read_posts().to_pylist()
    uids = [r["uid"] for r in rows]
    assert len(uids) == len(set(uids)), "a uid is stored twice"
    return {r["uid"]: r for r in rows}


def ingest(lake: Path, double: ArcticShiftDouble, **params: object) -> dict:
    """The source built directly (for a client timeout shorter than the 60 s default), ingested for real."""
    from edumine.lake import Lake
    from edumine.miners.ingest import ingest_source
    from edumine.miners.reddit_arcticshift import ArcticShiftSource
    from edumine.privacy import Pseudonymiser

    config = {k: v for k, v in source(double).items() if k not in ("kind", "name")}
    config.update(since=datetime.fromisoformat(config["since"]).date(), **params)
    report = ingest_source(ArcticShiftSource(**config), label="arctic", kind="reddit.arcticshift.v1",
                           lake=Lake(lake), run_id=f"run-{time.time_ns()}", pseudonymiser=Pseudonymiser(b"k" * 32))
    return report.as_dict()


def test_two_runs_the_second_adds_exactly_the_new_items(arctic: ArcticShiftDouble, tmp_lake: Path) -> None:
    start = arctic.clock
    posts = arctic.seed("Teachers", 150, comments_per_post=2, same_second=3)   # ties at the page boundaries
    arctic.seed("education", 5, comments_per_post=1, start=300)                # another subreddit: not asked for
    first = collect(tmp_lake, source(arctic, since=datetime.fromtimestamp(start, timezone.utc).date().isoformat()))
    report = first["inputs"][0]
    assert first["status"] == "completed"
    assert report["records"] == report["added"] == 150 * 3 and report["duplicates"] == 0
    assert set(lake_rows(tmp_lake)) == world_uids(arctic)
    searches = arctic.hits(r"^/api/(posts|comments)/search")
    assert all(r.query["sort"] == ["asc"] and r.query["subreddit"] == ["Teachers"] for r in searches)
    assert all(int(r.query["limit"][0]) <= 100 for r in searches)
    rows = lake_rows(tmp_lake)
    assert all(r["author"] is None or r["author"].startswith("a_") for r in rows.values())  # pseudonymised
    assert rows[f"reddit:post:{posts[0]['id']}"]["retrieved_at"].timestamp() == posts[0]["retrieved_on"]

    arctic.tick(86400)
    new = arctic.seed("Teachers", 20, same_second=4, start=400)
    late = [arctic.add_comment(post, f"A late reply {n}.") for n, post in enumerate(posts[:15])]
    arctic.clear_log()
    second = collect(tmp_lake, source(arctic, since=datetime.fromtimestamp(start, timezone.utc).date().isoformat()))
    report = second["inputs"][0]
    assert report["records"] == report["added"] == 20 + 15 and report["updated"] == 0
    assert report["duplicates"] == 0
    assert set(lake_rows(tmp_lake)) == world_uids(arctic)
    assert {f"reddit:post:{p['id']}" for p in new} | {f"reddit:comment:{c['id']}" for c in late} <= \
        set(lake_rows(tmp_lake))
    assert report["files"]["r/Teachers"] == {"posts": 20, "comments": 15}
    state = json.loads(next((tmp_lake / "_state").glob("reddit.arcticshift.v1--*.json")).read_text())
    assert state["marks"]["teachers"]["post"]["newest_created"] == max(p["created_utc"] for p in arctic.posts
                                                                        if p["subreddit"] == "Teachers")
    assert len(state["marks"]["teachers"]["post"]["newest_ids"]) == 4            # the four posts of that second

    third = collect(tmp_lake, source(arctic))
    assert third["inputs"][0]["records"] == 0 and third["inputs"][0]["partitions_rewritten"] == 0


@pytest.mark.parametrize("after_inclusive", [False, True])
def test_more_items_in_one_second_than_a_page_holds(after_inclusive: bool, tmp_lake: Path) -> None:
    with ArcticShiftDouble(after_inclusive=after_inclusive) as double:
        double.seed("Teachers", 30)
        double.seed("Teachers", 130, same_second=130, start=40)     # 130 posts in one second: limit=auto
        double.seed("Teachers", 30, start=200)
        report = collect(tmp_lake, source(double, comments=False))["inputs"][0]
        assert report["added"] == 190 and report["duplicates"] == 0
        assert set(lake_rows(tmp_lake)) == world_uids(double)
        assert any(r.query["limit"] == ["auto"] for r in double.requests)
        assert "ties_skipped" not in report["notes"]["subreddits"]["Teachers"]


def test_faults_cost_nothing(arctic: ArcticShiftDouble, tmp_path: Path) -> None:
    arctic.seed("Teachers", 120, comments_per_post=2, same_second=2)
    clean = ingest(tmp_path / "clean", arctic)
    clean_requests = len(arctic.requests)
    arctic.clear_log()

    reset = str(int(time.time()) + 1)
    fault = arctic.inject(r"^/api/posts/search", "status", status=429, retry_after=0.2)
    fault.headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    arctic.inject(r"^/api/comments/search", "status", status=429)   # no Retry-After: waits for X-RateLimit-Reset
    arctic.faults[-1].headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    arctic.inject(r"^/api/posts/search", "status", status=500, times=2)
    arctic.inject(r"^/api/comments/search", "status", status=503)
    arctic.inject(r"^/api/comments/search", "slow", delay=1.5)       # longer than the client's timeout
    arctic.inject(r"^/api/posts/search", "drop")
    arctic.inject(r"^/api/comments/search", "badjson")
    arctic.query_timeouts = 1                                        # {"error": "Query timed out"}
    faulty = ingest(tmp_path / "faulty", arctic, timeout=0.5)
    assert all(f.fired == f.times for f in arctic.faults)
    assert faulty["records"] == faulty["added"] == clean["added"] == 360 and faulty["quarantined_total"] == 0
    assert set(lake_rows(tmp_path / "faulty")) == set(lake_rows(tmp_path / "clean")) == world_uids(arctic)
    assert faulty["notes"]["retries"] == 9
    assert len(arctic.requests) == clean_requests + 9                # each fault cost one request, no more
    assert faulty["notes"]["requests"] == clean["notes"]["requests"] + 9


def test_a_subreddit_that_keeps_failing_is_reported_and_keeps_its_mark(arctic: ArcticShiftDouble,
                                                                      tmp_lake: Path) -> None:
    arctic.seed("Teachers", 3, comments_per_post=1)
    arctic.seed("education", 3, comments_per_post=1, start=20)
    arctic.inject(r"^/api/comments/search", "status", status=500, times=100)
    manifest = collect(tmp_lake, source(arctic, subreddits=["Teachers", "education"], retries=1))
    report = manifest["inputs"][0]
    assert manifest["status"] == "completed" and report["quarantined"] == {"fetch_failed": 2}
    assert "HTTP 500" in report["notes"]["subreddits"]["education"]["failed"]
    arctic.faults.clear()
    again = collect(tmp_lake, source(arctic, subreddits=["Teachers", "education"]))["inputs"][0]
    assert set(lake_rows(tmp_lake)) == world_uids(arctic, "Teachers") | world_uids(arctic, "education")
    assert again["added"] == 3 + 3 and again["quarantined_total"] == 0     # the comments of both


def test_second_retrieval_deletion_is_honoured_and_sticks(arctic: ArcticShiftDouble, tmp_lake: Path) -> None:
    posts = arctic.seed("Teachers", 4, comments_per_post=2)
    collect(tmp_lake, source(arctic))
    doomed, kept = posts[1], posts[2]
    arctic.second_retrieval(doomed, deleted=True)
    arctic.second_retrieval(kept)
    arctic.second_retrieval(arctic.comments[0], deleted=True)
    report = collect(tmp_lake, source(arctic))["inputs"][0]
    assert report["records"] == report["updated"] == 3 and report["added"] == 0
    rows = lake_rows(tmp_lake)
    gone = rows[f"reddit:post:{doomed['id']}"]
    assert gone["is_deleted"] and gone["removal"] == "deleted_later" and gone["body"] is None and gone["title"] is None
    assert gone["retrieved_at"].timestamp() == doomed["_meta"]["retrieved_2nd_on"]
    assert rows[f"reddit:comment:{arctic.comments[0]['id']}"]["is_deleted"]
    assert not rows[f"reddit:post:{kept['id']}"]["is_deleted"]

    doomed["_meta"] = {"retrieved_2nd_on": doomed["_meta"]["retrieved_2nd_on"] + 60, "was_initially_deleted": True}
    collect(tmp_lake, source(arctic))                               # a later version with its text back
    again = lake_rows(tmp_lake)[f"reddit:post:{doomed['id']}"]
    assert again["is_deleted"] and again["body"] is None


def test_polite_rate_and_the_rate_limit_headers(tmp_lake: Path) -> None:
    with ArcticShiftDouble(ratelimit_budget=3, ratelimit_window=1.0) as double:
        double.seed("Teachers", 250)
        report = collect(tmp_lake, source(double, comments=False, requests_per_minute=300))["inputs"][0]
        assert report["added"] == 250
        gaps = [b.at - a.at for a, b in zip(double.requests, double.requests[1:])]
        # 300 a minute: sent 0.2 s apart. The double stamps arrival, which scheduling jitter on a loaded machine
        # moves by a few ms either way (one gap measured 0.189 s at load 17); unpaced requests arrive ~5 ms apart.
        assert len(double.requests) == 3 and min(gaps) >= 0.15 and sum(gaps) >= 0.38
    with ArcticShiftDouble(ratelimit_budget=2, ratelimit_window=1.0) as double:
        double.seed("Teachers", 250)
        report = collect(tmp_lake.parent / "lake2", source(double, comments=False))["inputs"][0]
        assert report["added"] == 250 and report["notes"]["retries"] == 0
        assert all(r.status == 200 for r in double.requests)                # waited for the reset, never a 429
        assert double.requests[2].at - double.requests[1].at >= 0.5


def test_reset_header_forms() -> None:
    from edumine.miners.arcticshift_client import reset_seconds

    now = 1_700_000_000.0
    assert reset_seconds("1700000030", now) == 30
    assert reset_seconds("1700000030000", now) == 30
    assert reset_seconds("12", now) == 12
    assert reset_seconds("2023-11-14T22:13:50Z", now) == pytest.approx(30)
    assert reset_seconds("Tue, 14 Nov 2023 22:13:50 GMT", now) == pytest.approx(30)
    assert reset_seconds("soon", now) is None and reset_seconds(None, now) is None


def test_config_keys_are_the_contract(tmp_lake: Path) -> None:
    from edumine.errors import ConfigError
    from edumine.miners.reddit_arcticshift import ArcticShiftConfig

    assert {"subreddits", "since", "until", "comments", "base_url", "requests_per_minute"} <= \
        set(ArcticShiftConfig.model_fields)
    assert ArcticShiftConfig(kind="reddit.arcticshift.v1", subreddits=["r/Teachers"]).base_url == \
        "https://arctic-shift.photon-reddit.com"
    with pytest.raises(ConfigError, match="requests_per_minute"):
        make_config(tmp_lake, [{"kind": "reddit.arcticshift.v1", "subreddits": ["Teachers"],
                                "requests_per_minute": 0}])
    with pytest.raises(ConfigError, match="timeout"):
        make_config(tmp_lake, [{"kind": "reddit.arcticshift.v1", "subreddits": ["Teachers"], "timeout": 5}])


def test_the_example_config_collects_the_last_month(arctic: ArcticShiftDouble, tmp_path: Path) -> None:
    from conftest import ROOT
    from edumine.config import load_config
    from edumine.pipelines.runner import run_collect

    arctic.clock = time.time() - 40 * 86400
    old = arctic.seed("Teachers", 5, comments_per_post=1)
    arctic.clock = time.time() - 10 * 86400
    recent = arctic.seed("Teachers", 5, comments_per_post=2, start=10)
    config = load_config(ROOT / "configs" / "arcticshift-example.yaml",
                         [f"lake={tmp_path / 'lake'}", f"privacy.key_file={tmp_path / 'key'}",
                          f"sources.0.base_url={arctic.url}", "sources.0.requests_per_minute=6000"])
    report = json.loads(run_collect(config).manifest_path.read_text())["inputs"][0]
    assert report["added"] == 5 * 3
    rows = lake_rows(tmp_path / "lake")
    assert {f"reddit:post:{p['id']}" for p in recent} <= set(rows)
    assert not {f"reddit:post:{p['id']}" for p in old} & set(rows)
