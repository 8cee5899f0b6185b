"""reddit.praw.v1 with real praw against the local Reddit double (tests/servers/reddit.py): no mocking."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from conftest import make_config
from servers.reddit import RedditDouble

SECRET = "s3cr3t-client-secret-value"


@pytest.fixture
def reddit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REDDIT_CLIENT_ID", "test-client")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", SECRET)
    double = RedditDouble(client_secret=SECRET, inline_top=3, inline_depth=3).start()
    yield double
    double.stop()
    assert not double.errors, double.errors[0]


def source(double: RedditDouble, **extra: object) -> dict:
    return {"kind": "reddit.praw.v1", "name": "live-reddit", "subreddits": ["Teachers"],
            "praw": {"oauth_url": double.url, "reddit_url": double.url, "short_url": double.url, "timeout": 2,
                     "user_agent": "edumine-tests"},
            "backoff_seconds": 0.05, "lookback_days": 36500, **extra}


def collect(lake: Path, *sources: dict) -> dict:
    from edumine.pipelines.runner import run_collect

    ctx = run_collect(make_config(lake, list(sources)))
    return json.loads(ctx.manifest_path.read_text())


def world_uids(double: RedditDouble) -> set[str]:
    return {f"reddit:post:{p}" for p in double.posts} | {f"reddit:comment:{c}" for c in double.comments}


def lake_rows(lake: Path) -> dict[str, dict]:
    from edumine.lake import Lake

    rows = Lake(lake).read_posts().to_pylist()
    uids = [r["uid"] for r in rows]
    assert len(uids) == len(set(uids)), "a uid is stored twice"
    return {r["uid"]: r for r in rows}


def deep_thread(double: RedditDouble, subreddit: str = "Teachers") -> None:
    """A post whose comments need `more` stubs (5 top-level) and a "continue this thread" (depth 5)."""
    post = double.add_post(subreddit, "Grading late work: what is your policy?", "I teach 8th grade ELA and ...")
    parent = None
    for depth in range(5):
        parent = double.add_comment(post, f"Reply at depth {depth}: we take it for half credit.", parent=parent)
    for n in range(4):
        double.add_comment(post, f"Top-level answer {n}: no penalty before the unit ends.")


def test_two_runs_second_fetches_only_new_posts_and_comments(reddit: RedditDouble, tmp_lake: Path) -> None:
    reddit.seed("Teachers", 8, comments_per_post=4)
    deep_thread(reddit)
    first = collect(tmp_lake, source(reddit))
    report = first["inputs"][0]
    assert first["status"] == "completed"
    assert set(lake_rows(tmp_lake)) == world_uids(reddit)          # more stubs and continue-thread expanded
    assert report["added"] == len(world_uids(reddit)) == 9 + 8 * 4 + 9
    assert reddit.hits(r"^/api/morechildren") and reddit.hits(r"^/comments/\w+/_/\w+")
    rows = lake_rows(tmp_lake)
    comment = next(r for r in rows.values() if r["kind"] == "comment" and r["parent_uid"].startswith("reddit:comment"))
    assert rows[comment["parent_uid"]]["thread_uid"] == comment["thread_uid"]
    assert all(r["author"] is None or r["author"].startswith("a_") for r in rows.values())  # pseudonymised

    old_post = next(iter(reddit.posts.values()))
    new_posts = reddit.seed("Teachers", 3, comments_per_post=2, start=50)
    reddit.add_comment(old_post, "Coming back to this a day later: it worked!")
    reddit.add_comment(old_post, "Same in my district.", parent=old_post.comments[0])
    reddit.clear_log()
    second = collect(tmp_lake, source(reddit))
    report = second["inputs"][0]
    assert report["records"] == 3 + 3 * 2 + 2                       # only what is new was yielded
    assert report["added"] == 3 + 3 * 2 + 2 and report["updated"] == 0
    assert len(reddit.hits(r"^/r/Teachers/new")) == 1               # stopped at the high-water mark on page 1
    assert report["files"]["r/Teachers"]["posts"] == 3
    assert set(lake_rows(tmp_lake)) == world_uids(reddit)
    assert {f"reddit:post:{p.id}" for p in new_posts} <= set(lake_rows(tmp_lake))
    state = list((tmp_lake / "_state").glob("reddit.praw.v1--*.json"))
    assert len(state) == 1 and json.loads(state[0].read_text())["marks"]["teachers"]["newest_created"] == \
        max(p.created_utc for p in reddit.posts.values())

    reddit.clear_log()
    third = collect(tmp_lake, source(reddit))                       # nothing new: nothing yielded
    assert third["inputs"][0]["records"] == 0 and third["inputs"][0]["partitions_rewritten"] == 0


def test_edits_and_deletions_are_reflected_and_deletion_sticks(reddit: RedditDouble, tmp_lake: Path) -> None:
    posts = reddit.seed("Teachers", 5, comments_per_post=3)
    collect(tmp_lake, source(reddit))
    edited, deleted = posts[1], posts[2]
    doomed_comment = posts[3].comments[0]
    reddit.edit_post(edited, "EDIT: the district changed the policy, so ignore what I wrote.")
    reddit.delete_post(deleted)
    reddit.delete_comment(doomed_comment)
    second = collect(tmp_lake, source(reddit))["inputs"][0]
    assert second["records"] == 3 and second["updated"] == 3 and second["added"] == 0
    rows = lake_rows(tmp_lake)
    row = rows[f"reddit:post:{edited.id}"]
    assert row["body"].startswith("EDIT: the district") and row["is_edited"] and row["edited_at"] is not None
    gone = rows[f"reddit:post:{deleted.id}"]
    assert gone["is_deleted"] and gone["title"] is None and gone["body"] is None and gone["author"] is None
    assert gone["removal"] == "deleted"
    gone_comment = rows[f"reddit:comment:{doomed_comment.id}"]
    assert gone_comment["is_deleted"] and gone_comment["body"] is None

    deleted.selftext, deleted.removed_by_category, deleted.author = "back again", None, "teacher_1"
    deleted.edited = reddit.tick()
    collect(tmp_lake, source(reddit))                               # a later version with text: still deleted
    again = lake_rows(tmp_lake)[f"reddit:post:{deleted.id}"]
    assert again["is_deleted"] and again["body"] is None


def test_faults_mid_run_lose_and_duplicate_nothing(reddit: RedditDouble, tmp_lake: Path) -> None:
    reddit.seed("Teachers", 120, comments_per_post=2)               # two listing pages
    deep_thread(reddit)
    reddit.seed("education", 4, comments_per_post=2, start=200)
    reddit.inject(r"^/r/Teachers/new", "status", status=429, retry_after=0.2)
    reddit.inject(r"^/r/Teachers/new", "status", status=500, times=1)
    reddit.inject(r"^/comments/", "slow", delay=3.0)                # > timeout=2: prawcore retries
    reddit.inject(r"^/comments/", "badjson")
    reddit.inject(r"^/api/morechildren", "status", status=429, retry_after=0.1, method="POST")
    reddit.inject(r"^/comments/", "drop")
    reddit.inject(r"^/comments/", "status", status=503, times=3)   # more than prawcore's own retries
    started = time.perf_counter()
    manifest = collect(tmp_lake, source(reddit, subreddits=["Teachers", "education"]))
    report = manifest["inputs"][0]
    assert all(f.fired == f.times for f in reddit.faults)
    assert set(lake_rows(tmp_lake)) == world_uids(reddit)          # nothing lost, nothing twice
    assert report["added"] == report["records"] == len(world_uids(reddit)) and report["quarantined_total"] == 0
    assert report["notes"]["retries"] >= 4                         # 429s, malformed JSON, 5xx beyond prawcore's
    assert any(r.path.startswith("/comments/") for r in reddit.requests if r.status == 200)
    assert time.perf_counter() - started < 60


def test_a_failing_subreddit_is_reported_and_the_others_land(reddit: RedditDouble, tmp_lake: Path) -> None:
    reddit.seed("Teachers", 3, comments_per_post=1)
    reddit.seed("education", 3, comments_per_post=1, start=30)
    posts = [p for p in reddit.posts.values() if p.subreddit == "education"]
    reddit.inject(rf"^/comments/{posts[1].id}", "status", status=429, retry_after=0.01, times=100)
    manifest = collect(tmp_lake, source(reddit, subreddits=["Teachers", "education", "gone_private"], retries=2))
    report = manifest["inputs"][0]
    assert manifest["status"] == "completed"
    assert report["quarantined"] == {"fetch_failed": 2}
    notes = report["notes"]["subreddits"]
    assert "TooManyRequests" in notes["education"]["failed"] and "Redirect" in notes["gone_private"]["failed"]
    teachers = {f"reddit:post:{p.id}" for p in reddit.posts.values() if p.subreddit == "Teachers"} | \
        {f"reddit:comment:{c.id}" for c in reddit.comments.values() if c.post.subreddit == "Teachers"}
    assert teachers <= set(lake_rows(tmp_lake))

    reddit.faults.clear()
    again = collect(tmp_lake, source(reddit, subreddits=["Teachers", "education"]))["inputs"][0]
    assert set(lake_rows(tmp_lake)) == world_uids(reddit)          # the failed one kept its old mark
    assert again["quarantined_total"] == 0


def test_listing_cap_truncation_is_in_the_manifest(reddit: RedditDouble, tmp_lake: Path) -> None:
    reddit.listing_cap = 20
    reddit.seed("Teachers", 30)
    first = collect(tmp_lake, source(reddit, comments=False, listing_cap=20))["inputs"][0]
    note = first["notes"]["subreddits"]["Teachers"]
    assert first["records"] == 20 and note["window_truncated"] is True
    assert note["missing_window"]["backfill_with"] == "reddit.dumps.v1"

    reddit.seed("Teachers", 5, start=40)
    second = collect(tmp_lake, source(reddit, comments=False, listing_cap=20))["inputs"][0]
    assert second["records"] == 5 and second["notes"]["subreddits"]["Teachers"]["window_truncated"] is False

    reddit.seed("Teachers", 25, start=60)                           # more than the cap since the last run
    third = collect(tmp_lake, source(reddit, comments=False, listing_cap=20))["inputs"][0]
    note = third["notes"]["subreddits"]["Teachers"]
    assert third["records"] == 20 and note["window_truncated"] is True
    assert note["missing_window"]["from"] == note["previous_mark"]


def test_ratelimit_headers_are_honoured(reddit: RedditDouble, tmp_lake: Path) -> None:
    reddit.ratelimit_budget, reddit.ratelimit_reset = 4, 1
    reddit.seed("Teachers", 6)
    collect(tmp_lake, source(reddit, comments=True))
    api = [r for r in reddit.requests if r.path != "/api/v1/access_token"]
    gaps = [later.at - earlier.at for earlier, later in zip(api, api[1:])]
    assert len(api) >= 7
    assert gaps[3] >= 0.9 and max(gaps[:3]) < 0.9                   # waited for the window to reset


def test_credentials_stay_out_of_manifests_logs_and_the_lake(reddit: RedditDouble, tmp_lake: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    from edumine.errors import ConfigError

    reddit.seed("Teachers", 2, comments_per_post=1)
    with caplog.at_level(logging.DEBUG):
        manifest = collect(tmp_lake, source(reddit, client_id="test-client", client_secret=SECRET))
    assert manifest["inputs"][0]["added"] == 4
    assert manifest["config"]["sources"][0]["client_secret"] == "**********"
    assert SECRET not in caplog.text
    assert not [p for p in tmp_lake.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    with pytest.raises(ConfigError, match="REDDIT_CLIENT_SECRET"):
        make_config(tmp_lake, [source(reddit, praw={"client_secret": SECRET})])


def test_missing_credentials_are_reported_not_fatal(reddit: RedditDouble, tmp_lake: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDDIT_CLIENT_ID")
    monkeypatch.delenv("REDDIT_CLIENT_SECRET")
    manifest = collect(tmp_lake, source(reddit))
    assert manifest["status"] == "completed" and manifest["inputs"][0]["quarantined"] == {"no_credentials": 1}
    assert "REDDIT_CLIENT_ID" in manifest["inputs"][0]["notes"]["error"]


def test_praw_ini_site_and_script_app_login(tmp_path: Path, tmp_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import praw.config

    double = RedditDouble(client_id="ini-client", client_secret="ini-secret", username="researcher",
                          password="pw-not-logged").start()
    try:
        double.seed("Teachers", 2, comments_per_post=1)
        (tmp_path / "praw.ini").write_text("[edumine]\nclient_id=ini-client\nclient_secret=ini-secret\n"
                                           "username=researcher\npassword=pw-not-logged\n")
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("REDDIT_CLIENT_ID", raising=False)
        monkeypatch.setattr(praw.config.Config, "CONFIG", None)    # praw caches praw.ini per process
        manifest = collect(tmp_lake, source(double, site="edumine"))
        assert manifest["inputs"][0]["added"] == 4
        token = double.hits("access_token")[0]
        assert "grant_type=password" in token.body
        assert "pw-not-logged" not in json.dumps(manifest)
    finally:
        double.stop()
        praw.config.Config.CONFIG = None


def test_top_listing_backfill_with_a_time_filter(reddit: RedditDouble, tmp_lake: Path) -> None:
    for n, post in enumerate(reddit.seed("Teachers", 12)):
        post.score = n
    report = collect(tmp_lake, source(reddit, listing="top", time_filter="year", comments=False,
                                      max_posts=5))["inputs"][0]
    assert report["records"] == 5 and report["notes"]["subreddits"]["Teachers"]["window_truncated"] is True
    assert reddit.hits(r"^/r/Teachers/top")[0].query["t"] == ["year"]
    rows = lake_rows(tmp_lake)
    assert sorted(r["score"] for r in rows.values()) == [7, 8, 9, 10, 11]


def test_more_comments_beyond_the_cap_are_counted_not_fetched(reddit: RedditDouble, tmp_lake: Path) -> None:
    deep_thread(reddit)
    report = collect(tmp_lake, source(reddit, more_limit=0))["inputs"][0]
    assert not reddit.hits(r"^/api/morechildren") and not reddit.hits(r"^/comments/\w+/_/")
    note = report["notes"]["subreddits"]["Teachers"]
    assert report["files"]["r/Teachers"]["more_skipped"] == 2 == note["more_skipped"]
    # The tree gave the post, 3 inline top-level comments and 2 inline replies; the comment stream the other 4.
    assert report["records"] == 1 + 9 and report["files"]["r/Teachers"]["comments_streamed"] == 4
    assert set(lake_rows(tmp_lake)) == world_uids(reddit)
