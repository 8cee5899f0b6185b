"""reddit.praw.v1's comment stream and look-back, with real praw against the local Reddit double.

The source's clock (``reddit_praw._now``) is set per run, and the double's items are created at chosen times,
so that "a week-old thread", "a three-day outage" and "the listing cap" are what they say.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servers.reddit import Post, RedditDouble
from test_praw_miner import collect, lake_rows, reddit, source, world_uids  # noqa: F401  (reddit: fixture)

DAY = 86400.0
T0 = 1_760_000_000.0  # 2025-10-09: inside collect.plausible_time (no time after now + 1 day is stored)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    from edumine.miners import reddit_praw

    now = [T0]
    monkeypatch.setattr(reddit_praw, "_now", lambda: now[0])
    return now


def old_threads(double: RedditDouble, n: int = 14, comments: int = 2) -> list[Post]:
    """One thread a day for the ``n`` days before T0, each with a few comments on the same day."""
    posts = []
    for day in range(n, 0, -1):
        double.clock = T0 - day * DAY
        post = double.add_post("Teachers", f"Week {day}: how do you grade late work?", "I teach 7th grade ...",
                               author=f"teacher_{day % 5}", created=double.clock)
        for c in range(comments):
            double.add_comment(post, f"We give half credit ({c}).", author=f"teacher_{(day + c + 1) % 5}")
        posts.append(post)
    return posts


def run(lake: Path, double: RedditDouble, **extra: object) -> dict:
    return collect(lake, source(double, lookback_days=3, **extra))["inputs"][0]


def test_late_replies_to_week_old_threads_are_collected_exactly_once(reddit: RedditDouble, tmp_lake: Path,
                                                                     clock: list[float]) -> None:
    threads = old_threads(reddit)
    first = run(tmp_lake, reddit)
    assert first["added"] == len(world_uids(reddit)) == 14 * 3

    clock[0] = T0 + DAY                                              # the next nightly run
    reddit.clock = T0 + 3600
    new_posts = [reddit.add_post("Teachers", f"New question {n}", "Any advice?") for n in range(20)]
    week_old = [t for t in threads if T0 - t.created_utc >= 7 * DAY]
    late = [reddit.add_comment(thread, "Coming back to this a week later: it worked.") for thread in week_old]
    late += [reddit.add_comment(thread, "Same here.", parent=thread.comments[0]) for thread in week_old[:7]]
    assert len(late) == 15
    reddit.clear_log()
    second = run(tmp_lake, reddit)
    assert second["records"] == second["added"] == 20 + 15           # every late reply, nothing twice
    assert second["updated"] == 0 and second["duplicates"] == 0
    assert second["files"]["r/Teachers"]["comments_streamed"] == 15
    rows = lake_rows(tmp_lake)
    assert set(rows) == world_uids(reddit)
    assert {rows[f"reddit:comment:{c.id}"]["thread_uid"] for c in late} == {f"reddit:post:{t.id}" for t in week_old}
    assert not any(r.path.startswith(f"/comments/{t.id}") for t in week_old for r in reddit.requests)
    assert second["notes"]["subreddits"]["Teachers"]["comments_truncated"] is False

    clock[0] = T0 + 2 * DAY
    third = run(tmp_lake, reddit)
    assert third["records"] == 0 and third["partitions_rewritten"] == 0


def test_a_three_day_outage_loses_nothing(reddit: RedditDouble, tmp_lake: Path, clock: list[float]) -> None:
    threads = old_threads(reddit)
    run(tmp_lake, reddit)
    two_days_old = next(t for t in threads if T0 - t.created_utc == 2 * DAY)
    yesterday = next(t for t in threads if T0 - t.created_utc == DAY)

    # Down from T0 + 1 day to T0 + 3 days; meanwhile people post, reply to threads of every age, edit, delete.
    made = []
    for day in (1, 2, 3):
        reddit.clock = T0 + day * DAY
        made.append(reddit.add_post("Teachers", f"Outage day {day}", "Anyone else?"))
        made += [reddit.add_comment(t, f"Reply on outage day {day}.") for t in threads[::3]]
    reddit.edit_post(two_days_old, "EDIT: our district changed the policy.")
    reddit.delete_comment(yesterday.comments[0])

    clock[0] = T0 + 3.5 * DAY                                        # the job is back
    report = run(tmp_lake, reddit)
    note = report["notes"]["subreddits"]["Teachers"]
    assert report["added"] == len(made) and report["duplicates"] == 0
    assert report["updated"] == 2                                    # the edit and the deletion, found by re-reads
    assert note["comments_truncated"] is False and note["window_truncated"] is False
    assert "comment_gap" not in note and "missing_window" not in note
    rows = lake_rows(tmp_lake)
    assert set(rows) == world_uids(reddit)
    assert rows[f"reddit:post:{two_days_old.id}"]["body"].startswith("EDIT: our district")
    assert rows[f"reddit:comment:{yesterday.comments[0].id}"]["is_deleted"]
    # Re-read: the threads up to 3 days old at the previous run (days 1-3), though older than 3 days now.
    assert note["threads_refetched"] == 3


def test_the_comment_listing_cap_records_the_gap_and_dumps_fill_it(reddit: RedditDouble, tmp_lake: Path,
                                                                   clock: list[float], tmp_path: Path) -> None:
    reddit.listing_cap = 20
    threads = old_threads(reddit, n=10, comments=1)
    first = run(tmp_lake, reddit, listing_cap=20)
    assert first["notes"]["subreddits"]["Teachers"]["comments_truncated"] is False

    clock[0] = T0 + DAY
    reddit.clock = T0 + 600
    late = [reddit.add_comment(threads[n % 7], f"Late reply {n}.") for n in range(30)]  # threads 4+ days old
    second = run(tmp_lake, reddit, listing_cap=20)
    note = second["notes"]["subreddits"]["Teachers"]
    assert second["added"] == 20 and note["comments_truncated"] is True
    gap = note["comment_gap"]
    missed = [c for c in late if f"reddit:comment:{c.id}" not in lake_rows(tmp_lake)]
    assert missed == late[:10]
    assert gap["kind"] == "comment" and gap["missed_at_most"] == len(missed)
    assert gap["from"] < gap["to"] and gap["to"].startswith("2025-10-09")
    assert gap["backfill_with"] == "reddit.dumps.v1" and "since: 2025-10-08" in gap["how"]

    # The backfill the note describes: an Arctic Shift download of the window, read by reddit.dumps.v1.
    dump = tmp_path / "r_Teachers_comments.jsonl"
    dump.write_text("".join(json.dumps(_arctic_comment(c)) + "\n" for c in reddit.comments.values()))
    collect(tmp_lake, {"kind": "reddit.dumps.v1", "paths": [str(dump)], "subreddits": ["Teachers"],
                       "since": gap["from"][:10], "until": gap["to"][:10]})
    assert set(lake_rows(tmp_lake)) == world_uids(reddit)

    clock[0] = T0 + 2 * DAY
    third = run(tmp_lake, reddit, listing_cap=20)
    assert third["records"] == 0 and third["notes"]["subreddits"]["Teachers"]["comments_truncated"] is False


def _arctic_comment(comment) -> dict:  # noqa: ANN001
    return {"_meta": {"retrieved_2nd_on": int(comment.created_utc) + 129600}, "author": comment.author or "[deleted]",
            "body": comment.body, "created_utc": int(comment.created_utc), "edited": False, "id": comment.id,
            "link_id": f"t3_{comment.post.id}", "name": f"t1_{comment.id}", "parent_id": comment.parent,
            "permalink": f"/r/Teachers/comments/{comment.post.id}/x/{comment.id}/", "retrieved_on":
            int(comment.created_utc) + 15, "score": 1, "subreddit": "Teachers", "subreddit_id": "t5_2qh3l"}


def test_marks_from_before_the_comment_stream_record_no_false_gap(reddit: RedditDouble, tmp_lake: Path,
                                                                  clock: list[float]) -> None:
    reddit.listing_cap = 20
    threads = old_threads(reddit, n=10, comments=3)                  # 30 comments: more than the listing holds
    run(tmp_lake, reddit, listing_cap=20)
    state = next((tmp_lake / "_state").glob("reddit.praw.v1--*.json"))
    data = json.loads(state.read_text())
    for key in ("comments_newest_created", "comments_newest_ids"):  # as an older version wrote them
        del data["marks"]["teachers"][key]
    state.write_text(json.dumps(data))
    clock[0] = T0 + DAY
    reddit.clock = T0 + 600
    late = [reddit.add_comment(threads[0], "A late reply.")]
    report = run(tmp_lake, reddit, listing_cap=20)
    note = report["notes"]["subreddits"]["Teachers"]
    assert note["comments_truncated"] is False and "comment_gap" not in note
    assert report["added"] == 1 and f"reddit:comment:{late[0].id}" in lake_rows(tmp_lake)
