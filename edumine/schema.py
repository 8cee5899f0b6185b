"""The lake's record shape: one row per post or comment, whatever the platform.

Miners produce records as plain dicts with the keys of ``RECORD_FIELDS`` (missing keys are null);
``community`` is normalised with ``community_slug`` so that one community has one partition however a
source spells it (Reddit names are case-insensitive: ``Teachers`` and ``teachers`` are one place).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

import pyarrow as pa

UTC = timezone.utc
TS = pa.timestamp("us", tz="UTC")

# Partition columns live in the directory names (hive style), not inside the files.
PARTITION_FIELDS = (
    pa.field("platform", pa.string()),
    pa.field("community", pa.string()),
    pa.field("month", pa.string()),
)
FILE_FIELDS = (
    pa.field("uid", pa.string(), nullable=False),   # <platform>:<post|comment>:<id>, unique in the lake
    pa.field("kind", pa.string()),                  # post | comment
    pa.field("id", pa.string()),                    # the platform's own id (or one derived from content)
    pa.field("parent_uid", pa.string()),            # what a comment answers (post or comment); null for posts
    pa.field("thread_uid", pa.string()),            # the post a comment belongs to; a post's own uid
    pa.field("author", pa.string()),                # keyed-hash pseudonym; null when deleted or unknown
    pa.field("created_at", TS),
    pa.field("title", pa.string()),
    pa.field("body", pa.string()),
    pa.field("url", pa.string()),                   # where the record lives (permalink)
    pa.field("link_url", pa.string()),              # what a link post points to
    pa.field("flair", pa.string()),
    pa.field("score", pa.int64()),
    pa.field("num_comments", pa.int64()),
    pa.field("is_deleted", pa.bool_()),             # deleted or removed: the text is gone
    pa.field("removal", pa.string()),               # deleted | removed | deleted_later | <removed_by_category>
    pa.field("is_edited", pa.bool_()),
    pa.field("edited_at", TS),
    pa.field("retrieved_at", TS),                   # when the source saw this version
    pa.field("retrieval_estimated", pa.bool_()),    # true: retrieved_at is a guess (a file's mtime), not a
                                                    # real retrieval time; such a version never replaces one
                                                    # with a real time (null: real, as in lakes before 0.x)
    pa.field("source", pa.string()),                # registry name of the miner, e.g. reddit.dumps.v1
    pa.field("ingest_run", pa.string()),            # run that wrote this version
)
FILE_SCHEMA = pa.schema(FILE_FIELDS)
POSTS_SCHEMA = pa.schema(FILE_FIELDS + PARTITION_FIELDS)
RECORD_FIELDS = tuple(f.name for f in FILE_FIELDS) + ("platform", "community")

QUARANTINE_SCHEMA = pa.schema([
    pa.field("run_id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("location", pa.string()),  # file:line, file:row, or file
    pa.field("reason", pa.string()),
    pa.field("detail", pa.string()),
    pa.field("excerpt", pa.string()),   # pseudonymised, at most 300 characters
    pa.field("quarantined_at", TS),
])

DELETED_TEXT = frozenset({"[deleted]", "[removed]"})
_SLUG = re.compile(r"[^a-z0-9_.-]+")


def community_slug(name: str) -> str:
    slug = _SLUG.sub("-", name.strip().lower().removeprefix("r/")).strip("-.")
    return slug or "unknown"


def month_of(created_at: datetime) -> str:
    return f"{created_at.year:04d}-{created_at.month:02d}"


def make_uid(platform: str, kind: str, record_id: str) -> str:
    return f"{platform}:{kind}:{record_id}"


class BadRecord(ValueError):
    """A record that cannot be normalised; ``reason`` is a short code used to count quarantined records."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def from_epoch(value: float) -> datetime:
    """A UTC datetime; a value no datetime can hold (1e20, 10**30, NaN) is a ``bad_time`` BadRecord, so that
    every source's existing ``except BadRecord`` quarantines it instead of aborting the run."""
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        raise BadRecord("bad_time", f"{value!r} is not a representable time (seconds since 1970)") from None


def apply_deletion(record: dict) -> dict:
    """Mark deleted or removed content and drop its text, whatever the source said about it."""
    body = record.get("body")
    if record.get("removal") is None and isinstance(body, str) and body.strip() in DELETED_TEXT:
        record["removal"] = body.strip()[1:-1]
    if record.get("removal") is not None:
        record["is_deleted"] = True
        record["title"] = record["body"] = record["link_url"] = None
    else:
        record["is_deleted"] = False
    return record


DEFAULT_SINCE = date(2005, 6, 1)  # the month Reddit opened


def plausible_range(since: date | datetime | None = DEFAULT_SINCE,
                    until: date | datetime | None = None, *, now: datetime | None = None) -> tuple[float, float]:
    """Epoch bounds [low, high) of plausible times; ``until`` null means now + 1 day."""
    def epoch(value: date | datetime) -> float:
        if not isinstance(value, datetime):
            value = datetime.combine(value, time.min)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()

    low = epoch(since) if since is not None else float("-inf")
    high = epoch(until) if until is not None else ((now or datetime.now(UTC)) + timedelta(days=1)).timestamp()
    return low, high
