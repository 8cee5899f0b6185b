"""``reddit.arcticshift.v1``: posts and comments of subreddits from Arctic Shift's free, keyless search API.

For researchers without Reddit API approval: Arctic Shift archives every public post and comment as it is made
and again about 36 hours later (with ``_meta`` saying what was deleted meanwhile). Each subreddit is read
oldest first (``sort=asc``) by ``created_utc``. Paging sets ``after`` one second before the newest time seen and
skips the ids already read at that second, so items sharing a second across a page boundary are read exactly
once whether the server's ``after`` is inclusive or not; more items in one second than a page holds are asked
again with ``limit=auto`` (up to 1,000).

Incremental like ``reddit.praw.v1``: per subreddit and kind, the newest ``created_utc`` read and the ids at that
second are kept in ``<lake>/_state/``. Each run also re-reads the ``REREAD_DAYS`` before that mark (the second
retrieval, late deletions, items indexed late) and yields only what is new or changed. Records go through
``reddit.dumps.v1``'s ``normalise`` (same object shapes as Arctic Shift's dumps): ``retrieved_on`` and
``_meta.retrieved_2nd_on`` set ``retrieved_at``, ``_meta.was_deleted_later`` marks a deletion, and the lake
keeps a deleted record deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from edumine import registry
from edumine.miners.arcticshift_client import PUBLIC_API, ArcticShiftClient
from edumine.miners.base import BadRecord, ReadStats, Rejected, time_bounds
from edumine.miners.live import LiveSource, LiveSourceConfig, each_subreddit
from edumine.miners.reddit_dumps import normalise
from edumine.schema import UTC, from_epoch

log = logging.getLogger(__name__)

PAGE = 100
REREAD_DAYS = 2.0            # Arctic Shift retrieves everything a second time ~36 hours after it was posted
FIRST_RUN_DAYS = 30.0        # a first run without `since` collects the last month
ENDPOINTS = {"post": "/api/posts/search", "comment": "/api/comments/search"}


class ArcticShiftConfig(LiveSourceConfig):
    kind: Literal["reddit.arcticshift.v1"] = "reddit.arcticshift.v1"
    subreddits: list[str] = Field(min_length=1)
    since: date | datetime | None = Field(None, description="first run: collect from this time on (default: the "
                                                            "last 30 days); later runs continue from their mark")
    until: date | datetime | None = Field(None, description="inclusive; a date means the whole day (default: now)")
    comments: bool = Field(True, description="collect comments as well as posts")
    base_url: str = Field(PUBLIC_API, description="the Arctic Shift API (a mirror or a test double)")
    requests_per_minute: float = Field(30.0, gt=0, description="request rate (Arctic Shift is a free service: "
                                                               "be considerate)")

    @field_validator("subreddits")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [name.strip().removeprefix("/").removeprefix("r/") for name in value]
        if any(not name for name in names):
            raise ValueError("a subreddit name must not be empty")
        return names


def _digest(obj: dict[str, Any]) -> str:
    """What makes a new version: text, deletion, and the settled numbers of the second retrieval."""
    meta = obj.get("_meta") if isinstance(obj.get("_meta"), dict) else {}
    parts = [obj.get(k) for k in ("title", "selftext", "body", "author", "edited", "removed_by_category", "score",
                                  "num_comments")]
    parts += [meta.get(k) for k in ("retrieved_2nd_on", "was_deleted_later", "was_initially_deleted",
                                    "removal_type", "is_edited")]
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _created(obj: dict[str, Any]) -> float:
    try:
        return float(obj["created_utc"])
    except (KeyError, TypeError, ValueError):
        raise BadRecord("bad_time", f"created_utc={obj.get('created_utc')!r}") from None


@registry.sources.register("reddit.arcticshift.v1")
class ArcticShiftSource(LiveSource):
    Config = ArcticShiftConfig
    kind = "reddit.arcticshift.v1"
    platform = "reddit"

    def __init__(self, *, subreddits: list[str], since: Any = None, until: Any = None, comments: bool = True,
                 base_url: str = PUBLIC_API, requests_per_minute: float = 30.0, timeout: float = 60.0,
                 **live: Any) -> None:
        super().__init__(**live)
        self.subreddits = subreddits
        self.since = since
        self.until = until
        self.comments = comments
        self.base_url = base_url
        self.requests_per_minute = requests_per_minute
        self.timeout = timeout

    def identity(self) -> dict[str, Any]:
        return {"endpoint": self.base_url.rstrip("/")}

    def read(self, stats: ReadStats) -> Iterator[dict | Rejected]:
        self._notes["subreddits"] = {}
        client = ArcticShiftClient(self.base_url, source=self, requests_per_minute=self.requests_per_minute,
                                   timeout=self.timeout)
        try:
            yield from each_subreddit(self.subreddits, stats, self._notes["subreddits"],
                                      lambda name, counts, note: self._subreddit(client, name, counts, note))
        finally:
            self._notes["requests"] = self._notes.get("requests", 0) + client.requests
            client.close()

    def _subreddit(self, client: ArcticShiftClient, name: str, counts: Any,
                   note: dict[str, Any]) -> Iterator[dict | Rejected]:
        key = name.lower()
        mark = self.marks.get(key, {})
        now = time.time()
        low, high = time_bounds(self.since, self.until)
        high = min(high, now + 1)
        recent: dict[str, dict[str, Any]] = dict(mark.get("recent", {}))
        new_mark: dict[str, Any] = {}
        note["from"] = {}
        for kind in ["post", "comment"] if self.comments else ["post"]:
            kind_mark = mark.get(kind, {})
            hwm = kind_mark.get("newest_created")
            if hwm is not None:  # continue from the mark, re-reading the days the second retrieval may change
                start = max(low, hwm - REREAD_DAYS * 86400)
            else:
                start = low if self.since is not None else now - FIRST_RUN_DAYS * 86400
            note["from"][kind] = from_epoch(start).isoformat()
            newest, newest_ids = hwm, set(kind_mark.get("newest_ids", []))
            for obj in self._search(client, ENDPOINTS[kind], name, start, high, note):
                try:
                    created = _created(obj)
                    record = normalise(obj)
                except BadRecord as exc:
                    yield Rejected(f"r/{name}:{obj.get('id')}", exc.reason, exc.detail, json.dumps(obj)[:2000])
                    continue
                digest = _digest(obj)
                known = recent.get(record["id"])
                if known is not None and known["digest"] == digest:
                    continue
                counts[f"{kind}s" if known is None else "updated"] += 1
                recent[record["id"]] = {"created": created, "digest": digest}
                if newest is None or created > newest:
                    newest, newest_ids = created, {record["id"]}
                elif created == newest:
                    newest_ids.add(record["id"])
                yield record
            if newest is not None:
                new_mark[kind] = {"newest_created": newest, "newest_ids": sorted(newest_ids)}
        horizon = min((m["newest_created"] for m in new_mark.values()), default=now) - REREAD_DAYS * 86400
        new_mark["recent"] = {i: e for i, e in recent.items() if e["created"] >= horizon}
        new_mark["last_success"] = datetime.now(UTC).isoformat()
        self._pending[key] = {**mark, **new_mark}
        note["to"] = from_epoch(high).isoformat()
        note.update({k: counts[k] for k in ("posts", "comments", "updated") if counts.get(k)})

    def _search(self, client: ArcticShiftClient, endpoint: str, name: str, low: float, high: float,
                note: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item with ``low <= created_utc < high``, oldest first, each once."""
        cursor, at_cursor = low, set()
        limit: int | str = PAGE
        while True:
            params: dict[str, Any] = {"subreddit": name, "sort": "asc", "limit": limit, "after": int(cursor) - 1}
            if high != float("inf"):
                params["before"] = int(high) + (0 if high == int(high) else 1)
            page = client.search(endpoint, params)
            note["pages"] = note.get("pages", 0) + 1
            fresh = []
            for obj in page:
                try:
                    created = _created(obj)
                except BadRecord:
                    fresh.append(obj)  # normalise rejects it with its reason
                    continue
                if created < cursor or created >= high or (created == cursor and obj.get("id") in at_cursor):
                    continue
                fresh.append(obj)
                if created > cursor:
                    cursor, at_cursor = created, {obj.get("id")}
                else:
                    at_cursor.add(obj.get("id"))
            yield from fresh
            full = len(page) >= PAGE
            if not full:
                return
            if fresh:
                limit = PAGE
            elif limit != "auto":
                limit = "auto"  # more items share one second than a page of 100 holds
            else:
                note["ties_skipped"] = note.get("ties_skipped", 0) + 1
                log.warning("r/%s %s: more items at %s than one page holds; moving on a second", name, endpoint,
                            from_epoch(cursor).isoformat())
                cursor, at_cursor = float(int(cursor) + 1), set()
