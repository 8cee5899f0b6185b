"""Reddit things (praw objects' ``__dict__`` or API JSON) as lake records, for the praw source."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from edumine.schema import from_epoch, make_uid

REDDIT = "https://www.reddit.com"


def post_record(data: dict[str, Any], retrieved: datetime) -> dict[str, Any]:
    edited = data.get("edited")
    pid = data["id"]
    permalink = data.get("permalink") or f"/comments/{pid}/"
    return {
        "uid": make_uid("reddit", "post", pid), "platform": "reddit", "community": str(data["subreddit"]),
        "kind": "post", "id": pid, "parent_uid": None, "thread_uid": make_uid("reddit", "post", pid),
        "author": _name(data.get("author")), "created_at": from_epoch(float(data["created_utc"])),
        "title": data.get("title"), "body": data.get("selftext"),
        "url": REDDIT + permalink if permalink.startswith("/") else permalink,
        "link_url": None if data.get("is_self", True) else data.get("url"),
        "flair": data.get("link_flair_text"), "score": _int(data.get("score")),
        "num_comments": _int(data.get("num_comments")),
        "removal": data.get("removed_by_category") or None,
        "is_edited": bool(edited), "edited_at": from_epoch(float(edited)) if _is_time(edited) else None,
        "retrieved_at": retrieved,
    }


def comment_record(data: dict[str, Any], retrieved: datetime) -> dict[str, Any]:
    edited = data.get("edited")
    cid = data["id"]
    thread = str(data["link_id"]).split("_", 1)[-1]
    parent = str(data.get("parent_id") or f"t3_{thread}")
    permalink = data.get("permalink") or f"/comments/{thread}/_/{cid}/"
    return {
        "uid": make_uid("reddit", "comment", cid), "platform": "reddit", "community": str(data["subreddit"]),
        "kind": "comment", "id": cid,
        "parent_uid": make_uid("reddit", "comment" if parent.startswith("t1_") else "post",
                               parent.split("_", 1)[-1]),
        "thread_uid": make_uid("reddit", "post", thread), "author": _name(data.get("author")),
        "created_at": from_epoch(float(data["created_utc"])), "title": None, "body": data.get("body"),
        "url": REDDIT + permalink if permalink.startswith("/") else permalink, "link_url": None, "flair": None,
        "score": _int(data.get("score")), "num_comments": None, "removal": None,
        "is_edited": bool(edited), "edited_at": from_epoch(float(edited)) if _is_time(edited) else None,
        "retrieved_at": retrieved,
    }


def _name(author: Any) -> str | None:
    return None if author is None else str(getattr(author, "name", author))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1
