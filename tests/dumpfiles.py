"""Helpers that write small Pushshift-style dumps for tests."""

from __future__ import annotations

import json
from pathlib import Path

import zstandard


def write_zst(path: Path, objects: list[dict] | list[str]) -> Path:
    lines = [o if isinstance(o, str) else json.dumps(o) for o in objects]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode("utf-8")))
    return path


def submission(id: str, created: int | float | str = 1514764800, subreddit: str = "teaching", **extra) -> dict:
    record = {"id": id, "subreddit": subreddit, "created_utc": created, "title": f"title {id}",
              "selftext": f"body of {id}", "author": f"author_{id}", "score": 3, "num_comments": 1,
              "permalink": f"/r/{subreddit}/comments/{id}/x/", "is_self": True, "edited": False,
              "retrieved_on": 1600000000}
    record.update(extra)
    return record


def comment(id: str, link: str, parent: str | None = None, created: int = 1514768400,
            subreddit: str = "teaching", **extra) -> dict:
    record = {"id": id, "subreddit": subreddit, "created_utc": created, "body": f"reply {id}",
              "author": f"author_{id}", "score": 1, "link_id": f"t3_{link}", "parent_id": parent or f"t3_{link}",
              "edited": False, "retrieved_on": 1600000000}
    record.update(extra)
    return record
