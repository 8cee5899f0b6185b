"""``reddit.dumps.v1``: Pushshift and Arctic Shift NDJSON dumps, zstandard-compressed or plain.

Reads monthly dumps (``RS_2019-01.zst``), per-subreddit dumps (``Teachers_submissions.zst``,
``Teachers_comments.zst``) and the ``.jsonl`` files Arctic Shift's download tool writes; 2023+ Arctic Shift
objects carry ``retrieved_on`` and a ``_meta`` from the second retrieval (``retrieved_2nd_on``,
``was_deleted_later``, ``was_initially_deleted``, ``removal_type``, ``is_edited``, ``note``).

Streams line by line with bounded memory whatever the file size (zstd window up to 2 GiB, as monthly
Pushshift dumps need). Submissions and comments may be mixed in one file. Every era's quirks are handled
(see ``../shared/fixtures/pushshift-eras/FIELDS.md``): ``created_utc`` as int, float or numeric string;
``edited`` as bool or epoch; ``name`` missing; ``_meta.was_deleted_later``; ``retrieved_on`` /
``retrieved_utc`` / ``updated_on``. A bad line is rejected with its reason; a truncated or corrupt file
keeps what was read before the damage and is reported.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson
from pydantic import field_validator

from edumine import registry
from edumine.miners.base import (BadRecord, FileSourceConfig, ReadStats, Rejected, expand_paths,
                                 parse_epoch, record_builder, time_bounds)
from edumine.schema import from_epoch, make_uid

REDDIT = "https://www.reddit.com"
_RETRIEVAL_KEYS = ("retrieved_on", "retrieved_utc", "updated_on")


class RedditDumpConfig(FileSourceConfig):
    kind: Literal["reddit.dumps.v1"] = "reddit.dumps.v1"
    subreddits: list[str] | None = None

    @field_validator("subreddits")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [name.strip().lower().removeprefix("r/") for name in value]


class TruncatedFile(Exception):
    """A compressed stream that ended inside a frame: the file was cut short (a partial download)."""


def _zstd_lines(raw: BinaryIO, read_size: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a (possibly multi-frame) zstd stream; raises TruncatedFile if it ends mid-frame."""
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=2**31)
    dobj = dctx.decompressobj()
    pending = b""
    while chunk := raw.read(read_size):
        data = dobj.decompress(chunk)
        while dobj.eof and dobj.unused_data:
            rest, dobj = dobj.unused_data, dctx.decompressobj()
            data += dobj.decompress(rest)
        if data:
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            yield from lines
    if not dobj.eof:
        raise TruncatedFile(f"the zstd stream ends inside a frame (file cut short?); the partial last line "
                            f"({len(pending)} bytes) is dropped")
    if pending:
        yield pending


@contextmanager
def open_lines(path: Path) -> Iterator[Iterator[bytes]]:
    """Binary line iterator over a .zst, .gz or plain NDJSON file."""
    raw = open(path, "rb")
    try:
        name = path.name.lower()
        if name.endswith((".zst", ".zstd")):
            yield _zstd_lines(raw)
        elif name.endswith(".gz"):
            yield gzip.open(raw)  # type: ignore[misc]
        else:
            yield raw  # type: ignore[misc]
    finally:
        raw.close()


def iter_json_lines(path: Path, stats: ReadStats) -> Iterator[tuple[int, bytes, Any] | Rejected]:
    """(line number, raw line, parsed object) per non-empty line; bad lines and files as Rejected."""
    counts = stats.file(path)
    lineno = 0
    try:
        with open_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                counts["lines"] += 1
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    # orjson refuses invalid UTF-8 and lone surrogates; the standard parser reads them (the
                    # record normaliser then repairs the text) rather than losing the record.
                    try:
                        obj = json.loads(line.decode("utf-8", "replace"))
                        counts["lines_with_repaired_text"] += 1
                    except ValueError:
                        yield Rejected(f"{path}:{lineno}", "invalid_json", str(exc), _text(line))
                        continue
                if not isinstance(obj, dict):
                    yield Rejected(f"{path}:{lineno}", "not_an_object", f"a JSON {type(obj).__name__}", _text(line))
                    continue
                yield lineno, line, obj
    except Exception as exc:  # noqa: BLE001  (a damaged file must not stop the run)
        yield Rejected(str(path), "unreadable_file", f"stopped after line {lineno}: {type(exc).__name__}: {exc}")


def _text(line: bytes) -> str:
    return line[:2000].decode("utf-8", "replace")


@registry.sources.register("reddit.dumps.v1")
class RedditDumpSource:
    Config = RedditDumpConfig
    platform = "reddit"

    def __init__(self, *, paths: list[str], subreddits: list[str] | None = None,
                 since: Any = None, until: Any = None) -> None:
        self.paths = paths
        self.subreddits = subreddits
        self.since = since
        self.until = until

    def files(self) -> tuple[list[Path], list[str]]:
        return expand_paths(self.paths)

    def read(self, stats: ReadStats) -> Iterator[dict | Rejected]:
        wanted = set(self.subreddits) if self.subreddits else None
        low, high = time_bounds(self.since, self.until)
        for path in self.files()[0]:
            counts = stats.file(path)
            for item in iter_json_lines(path, stats):
                if isinstance(item, Rejected):
                    yield item
                    continue
                lineno, line, obj = item
                if wanted is not None and str(obj.get("subreddit") or "").lower() not in wanted:
                    counts["filtered"] += 1
                    continue
                try:
                    record = normalise(obj)
                except BadRecord as exc:
                    yield Rejected(f"{path}:{lineno}", exc.reason, exc.detail, _text(line))
                    continue
                if not low <= record["created_at"].timestamp() < high:
                    counts["filtered"] += 1
                    continue
                yield record


@record_builder
def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """One dump object (submission or comment, any era) as a lake record (author still raw)."""
    is_comment = "link_id" in obj or ("body" in obj and "title" not in obj)
    record_id = obj.get("id") or _strip_prefix(obj.get("name"))
    if not record_id or not isinstance(record_id, str):
        raise BadRecord("missing_id", "neither 'id' nor 'name' holds an id")
    subreddit = obj.get("subreddit")
    if isinstance(subreddit, (int, float)) and not isinstance(subreddit, bool):
        subreddit = str(subreddit)  # a community named by digits, written as a JSON number
    if not subreddit or not isinstance(subreddit, str):
        raise BadRecord("missing_community", "'subreddit' is missing")
    if obj.get("created_utc") is None:
        raise BadRecord("missing_time", "'created_utc' is missing")
    created = from_epoch(parse_epoch(obj["created_utc"], "created_utc"))
    edited = obj.get("edited")
    edited_at = None
    if isinstance(edited, (int, float)) and not isinstance(edited, bool) and edited > 1:
        edited_at = _time_or_none(float(edited))
    retrieved = [_epoch_or_none(obj.get(k)) for k in _RETRIEVAL_KEYS]
    meta = obj.get("_meta") if isinstance(obj.get("_meta"), dict) else {}
    retrieved.append(_epoch_or_none(meta.get("retrieved_2nd_on")))
    retrieved = [r for r in retrieved if r is not None]

    removal = None
    if meta.get("was_deleted_later"):
        removal = "deleted_later"
    elif obj.get("removed_by_category"):
        removal = str(obj["removed_by_category"])

    kind = "comment" if is_comment else "post"
    permalink = obj.get("permalink")
    if is_comment:
        thread_id = _strip_prefix(obj.get("link_id"))
        if not thread_id:
            raise BadRecord("missing_thread", "comment without 'link_id'")
        parent = obj.get("parent_id") or f"t3_{thread_id}"
        parent_uid = make_uid("reddit", "comment" if str(parent).startswith("t1_") else "post", _strip_prefix(parent))
        thread_uid = make_uid("reddit", "post", thread_id)
        if not permalink:
            permalink = f"/r/{subreddit}/comments/{thread_id}/_/{record_id}/"
        title, body, link_url = None, obj.get("body"), None
    else:
        parent_uid = None
        thread_uid = make_uid("reddit", "post", record_id)
        title, body = obj.get("title"), obj.get("selftext")
        link_url = None if obj.get("is_self") else obj.get("url")
    if isinstance(permalink, str) and permalink.startswith("/"):
        permalink = REDDIT + permalink

    return {
        "uid": make_uid("reddit", kind, record_id),
        "platform": "reddit",
        "community": subreddit,
        "kind": kind,
        "id": record_id,
        "parent_uid": parent_uid,
        "thread_uid": thread_uid,
        "author": obj.get("author"),
        "created_at": created,
        "title": _str_or_none(title),
        "body": _str_or_none(body),
        "url": _str_or_none(permalink),
        "link_url": _str_or_none(link_url),
        "flair": _str_or_none(obj.get("link_flair_text")),
        "score": _int_or_none(obj.get("score")),
        "num_comments": None if is_comment else _int_or_none(obj.get("num_comments")),
        "removal": removal,
        "is_edited": bool(edited) or bool(meta.get("is_edited")),  # Arctic Shift: text changed by the 2nd retrieval
        "edited_at": edited_at,
        "retrieved_at": _time_or_none(max(retrieved)) if retrieved else None,
    }


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
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else (None if value is None else str(value))
