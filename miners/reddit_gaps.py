"""What a Reddit listing could not reach: the gap a run records in its manifest, and how to fill it.

Reddit's listings (``/r/{sub}/new``, ``/r/{sub}/comments``) stop at about 1,000 items. A run that cannot walk
back to its previous high-water mark has missed whatever was created between that mark and the oldest item the
listing still held. Reddit ids are base-36 numbers handed out in order across the whole site, so the distance
between the mark's id and the oldest id seen bounds how many items of this subreddit can be missing: a loose
bound on a busy site, but a true one (``missed_at_most``).
"""

from __future__ import annotations

from typing import Any

from edumine.schema import from_epoch


def id_number(reddit_id: str | None) -> int | None:
    try:
        return int(str(reddit_id).split("_", 1)[-1], 36)
    except (TypeError, ValueError):
        return None


def gap_note(*, subreddit: str, kind: str, mark_created: float | None, mark_ids: list[str] | set[str],
             since: float | None, oldest_created: float | None, oldest_id: str | None) -> dict[str, Any]:
    """The manifest note for a window the listing did not reach (``kind``: ``post`` or ``comment``)."""
    start = mark_created if mark_created is not None else since
    start_text = from_epoch(start).isoformat() if start is not None else None
    end_text = from_epoch(oldest_created).isoformat() if oldest_created is not None else None
    marks = [n for n in (id_number(i) for i in mark_ids) if n is not None]
    oldest = id_number(oldest_id)
    missed = max(oldest - max(marks) - 1, 0) if marks and oldest is not None else None
    what = "submissions" if kind == "post" else "comments"
    until = end_text[:10] if end_text else "the oldest item collected"
    since_text = start_text[:10] if start_text else "the subreddit's start"
    how = (f"download r/{subreddit} {what} created between {since_text} and {until} (an Arctic Shift per-subreddit "
           f"dump or its download tool's .jsonl) and add a `reddit.dumps.v1` source with those paths, "
           f"`subreddits: [{subreddit}]`, `since: {since_text}`, `until: {until}`; or add a `reddit.arcticshift.v1` "
           f"source with `subreddits: [{subreddit}]`, `since` and `until` as above and `incremental: false`")
    return {"kind": kind, "from": start_text, "to": end_text, "missed_at_most": missed,
            "backfill_with": "reddit.dumps.v1", "how": how}
