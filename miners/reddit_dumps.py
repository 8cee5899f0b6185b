"""``reddit.dumps.v1``: Pushshift and Arctic Shift NDJSON dumps, zstandard-compressed or plain.

Reads monthly dumps (``RS_2019-01.zst``), per-subreddit dumps (``Teachers_submissions.zst``,
``Teachers_comments.zst``) and the ``.jsonl`` files Arctic Shift's download tool writes; 2023+ Arctic Shift
objects carry ``retrieved_on`` and a ``_meta`` from the second retrieval (``retrieved_2nd_on``,
``was_deleted_later``, ``was_initially_deleted``, ``removal_type``, ``is_edited``, ``note``).

Streams blocks of lines (miners/ndjson.py) with bounded memory whatever the file size. Submissions and comments may be mixed in one file. Every era's quirks are handled
(see ``../shared/fixtures/pushshift-eras/FIELDS.md``): ``created_utc`` as int, float or numeric string;
``edited`` as bool or epoch; ``name`` missing; ``_meta.was_deleted_later``; ``retrieved_on`` /
``retrieved_utc`` / ``updated_on``. A bad line is rejected with its reason; a truncated or corrupt file
keeps what was read before the damage and is reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from edumine import registry
from edumine.miners.base import (BadRecord, FileListing, FileSourceConfig, ReadStats, Rejected,
                                 parse_epoch, record_builder, time_bounds)
from edumine.miners.ndjson import (TruncatedFile, _read_ahead, _text, iter_json_lines, open_blocks,  # noqa: F401
                                   open_lines, parse_line, unreadable)
from edumine.schema import UTC, from_epoch, make_uid

REDDIT = "https://www.reddit.com"
_RETRIEVAL_KEYS = ("retrieved_on", "retrieved_utc", "updated_on")


class RedditDumpConfig(FileSourceConfig):
    kind: Literal["reddit.dumps.v1"] = "reddit.dumps.v1"
    subreddits: list[str] | None = None
    workers: int | None = Field(None, ge=0, description="processes that parse and normalise the dump's lines "
                                "(0: in the collecting process); default: one per core for dumps of 32 MiB "
                                "and more, none for smaller ones")

    @field_validator("subreddits")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [name.strip().lower().removeprefix("r/") for name in value]


@registry.sources.register("reddit.dumps.v1")
class RedditDumpSource(FileListing):
    Config = RedditDumpConfig
    platform = "reddit"

    def __init__(self, *, paths: list[str], subreddits: list[str] | None = None,
                 since: Any = None, until: Any = None, workers: int | None = None) -> None:
        self.paths = paths
        self.workers = workers
        self.subreddits = subreddits
        self.since = since
        self.until = until

    def read(self, stats: ReadStats) -> Iterator[dict | Rejected]:
        options = self._options()
        for path in self.files()[0]:
            counts = stats.file(path)
            for item in iter_json_lines(path, stats):
                if isinstance(item, Rejected):
                    yield item
                    continue
                lineno, line, obj = item
                record = _record(path, lineno, line, obj, options, counts)
                if record is not None:
                    yield record

    def batch_jobs(self, stats: ReadStats) -> Iterator[DumpBlock | Rejected]:
        """The batched reading (miners/batches.py): one job per block of whole lines, which a worker process
        can read on its own (``DumpBlock()``), and an unreadable file as a Rejected after its blocks, so that
        the lines, their numbers and what is rejected are those of ``read``."""
        options = self._options()
        for path in self.files()[0]:
            lineno = 0
            try:
                with open_blocks(path) as blocks:
                    for block in _read_ahead(blocks):
                        yield DumpBlock(str(path), lineno + 1, block, options)
                        lineno += block.count(b"\n") + 1
            except Exception as exc:  # noqa: BLE001  (a damaged file must not stop the run)
                yield unreadable(path, lineno, exc)

    def _options(self) -> tuple[frozenset[str] | None, float, float]:
        wanted = frozenset(self.subreddits) if self.subreddits else None
        return (wanted, *time_bounds(self.since, self.until))


@dataclass(slots=True)
class DumpBlock:
    """Whole lines of one dump, read where it is called (in a worker process, for the batched path)."""

    path: str
    first_line: int
    block: bytes
    options: tuple[frozenset[str] | None, float, float]

    def __call__(self) -> tuple[list[dict | Rejected], ReadStats]:
        stats = ReadStats()
        counts = stats.file(self.path)
        items: list[dict | Rejected] = []
        for lineno, line in enumerate(self.block.split(b"\n"), self.first_line):
            if not line.strip():
                continue
            counts["lines"] += 1
            obj = parse_line(f"{self.path}:{lineno}", line, counts)
            if type(obj) is dict:
                obj = _record(self.path, lineno, line, obj, self.options, counts)
            if obj is not None:
                items.append(obj)
        return items, stats

    def read_batch(self, settings: Any) -> Any:
        """The block as a prepared Batch by the vectorised reading of miners/dump_columns.py (the same Batch
        ``run_job`` makes of ``self()``, faster)."""
        from edumine.miners.dump_columns import read_block

        return read_block(self, settings)


def _record(path: Path | str, lineno: int, line: bytes, obj: dict, options: tuple, counts: Counter) -> dict | Rejected | None:
    """The lake record of a parsed line; a Rejected if it cannot be one; None if a filter leaves it out."""
    wanted, low, high = options
    if wanted is not None and str(obj.get("subreddit") or "").lower() not in wanted:
        counts["filtered"] += 1
        return None
    try:
        record = normalise(obj)
    except BadRecord as exc:
        return Rejected(f"{path}:{lineno}", exc.reason, exc.detail, _text(line))
    if not low <= record["created_at"].timestamp() < high:
        counts["filtered"] += 1
        return None
    return record


@record_builder
def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """One dump object (submission or comment, any era) as a lake record (author still raw)."""
    get = obj.get
    is_comment = "link_id" in obj or ("body" in obj and "title" not in obj)
    record_id = get("id") or _strip_prefix(get("name"))
    if not record_id or not isinstance(record_id, str):
        raise BadRecord("missing_id", "neither 'id' nor 'name' holds an id")
    subreddit = get("subreddit")
    if isinstance(subreddit, (int, float)) and not isinstance(subreddit, bool):
        subreddit = str(subreddit)  # a community named by digits, written as a JSON number
    if not subreddit or not isinstance(subreddit, str):
        raise BadRecord("missing_community", "'subreddit' is missing")
    created_utc = get("created_utc")
    if created_utc is None:
        raise BadRecord("missing_time", "'created_utc' is missing")
    if created_utc.__class__ is int and 0 <= created_utc <= 1e11:  # the common case of parse_epoch
        created = datetime.fromtimestamp(created_utc, UTC)
    else:
        created = from_epoch(parse_epoch(created_utc, "created_utc"))
    edited = get("edited")
    edited_at = None
    if isinstance(edited, (int, float)) and not isinstance(edited, bool) and edited > 1:
        edited_at = _time_or_none(float(edited))
    latest = None  # the newest of the retrieval times
    for key in _RETRIEVAL_KEYS:
        value = get(key)
        if value is not None and (seconds := _epoch_or_none(value)) is not None and \
                (latest is None or seconds > latest):
            latest = seconds
    meta = get("_meta")
    if not isinstance(meta, dict):
        meta = _NO_META
    elif (value := meta.get("retrieved_2nd_on")) is not None and (seconds := _epoch_or_none(value)) is not None \
            and (latest is None or seconds > latest):
        latest = seconds

    removal = None
    if meta.get("was_deleted_later"):
        removal = "deleted_later"
    elif get("removed_by_category"):
        removal = str(obj["removed_by_category"])

    kind = "comment" if is_comment else "post"
    permalink = get("permalink")
    if is_comment:
        thread_id = _strip_prefix(get("link_id"))
        if not thread_id:
            raise BadRecord("missing_thread", "comment without 'link_id'")
        parent = get("parent_id") or f"t3_{thread_id}"
        parent_uid = make_uid("reddit", "comment" if str(parent).startswith("t1_") else "post", _strip_prefix(parent))
        thread_uid = f"reddit:post:{thread_id}"
        if not permalink:
            permalink = f"/r/{subreddit}/comments/{thread_id}/_/{record_id}/"
        title, body, link_url = None, get("body"), None
    else:
        parent_uid = None
        thread_uid = f"reddit:post:{record_id}"
        title, body = get("title"), get("selftext")
        link_url = None if get("is_self") else get("url")
    if isinstance(permalink, str) and permalink.startswith("/"):
        permalink = REDDIT + permalink
    flair = get("link_flair_text")
    return {
        "uid": f"reddit:{kind}:{record_id}",
        "platform": "reddit",
        "community": subreddit,
        "kind": kind,
        "id": record_id,
        "parent_uid": parent_uid,
        "thread_uid": thread_uid,
        "author": get("author"),
        "created_at": created,
        "title": title if title is None or title.__class__ is str else _str_or_none(title),
        "body": body if body is None or body.__class__ is str else _str_or_none(body),
        "url": permalink if permalink is None or permalink.__class__ is str else _str_or_none(permalink),
        "link_url": link_url if link_url is None or link_url.__class__ is str else _str_or_none(link_url),
        "flair": flair if flair is None or flair.__class__ is str else _str_or_none(flair),
        "score": _int_or_none(get("score")),
        "num_comments": None if is_comment else _int_or_none(get("num_comments")),
        "removal": removal,
        "is_edited": bool(edited) or bool(meta.get("is_edited")),  # Arctic Shift: text changed by the 2nd retrieval
        "edited_at": edited_at,
        "retrieved_at": None if latest is None else _time_or_none(latest),
    }


_NO_META: dict[str, Any] = {}


def _time_or_none(seconds: float) -> Any:
    """An edit or retrieval time no datetime can hold is dropped (the record itself is fine)."""
    try:
        return from_epoch(seconds)
    except BadRecord:
        return None


def _strip_prefix(fullname: Any) -> str | None:
    if not isinstance(fullname, str) or not fullname:
        return None
    return fullname.split("_", 1)[1] if fullname[:3] in ("t1_", "t3_") else fullname


def _epoch_or_none(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _int_or_none(value: Any) -> int | None:
    if value.__class__ is int:
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else (None if value is None else str(value))
