"""reddit.dumps.v1's fast path: a block of dump lines parsed by msgspec and normalised as Arrow columns.

The record-at-a-time path (orjson, the dump reader's ``normalise``, then ``normalise_record``) costs 25-35 µs a
record of Python; here each line is parsed by msgspec into a struct of only the 21 fields the lake uses (the
other 20-100 keys of a dump object are skipped in C, not built), msgspec checks each field's type as it parses,
each field of a block becomes one Arrow array and the rules are applied with pyarrow.compute. A row stays on
the fast path only when every field it uses holds its usual type and an ordinary value: ids, fullnames and
communities of ``[A-Za-z0-9_]``; ``created_utc`` a whole number of seconds (int, whole float or digit string)
inside the plausible range; ``edited`` a boolean or a whole epoch; retrieval times whole epochs before the
range's end; counts int64; flags booleans; text text. Every other row (bad JSON, a blank line, a fractional or
millisecond time, a string score, an edit time in the future, a comment without a thread) goes through the
record-at-a-time code, which parses it with orjson and quarantines, coerces and counts exactly as before; then
fast and slow rows are put back in input order. So a block gives the same Batch, and the lake the same rows,
as the record-at-a-time path (tests/test_dump_columns.py, block by block and lake by lake).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edumine.miners.base import ReadStats
from edumine.miners.batches import Batch, Settings, normalise_items, prepare_arrays, prepare_table
from edumine.miners.ndjson import parse_line
from edumine.miners.reddit_dumps import REDDIT, DumpBlock, _record
from edumine.schema import TS

_NAME = r"^[A-Za-z0-9_]+$"  # ids, fullnames and communities the fast path takes as they are
_MAX_SECONDS = 1e11  # parse_epoch reads a larger number as milliseconds
_FLAG = frozenset({bool, type(None)})
_UNSET = msgspec.UNSET


_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_EPOCH = _INT64 | float | None  # retrieval times; a string or a boolean there takes the slow path


class _Meta(msgspec.Struct, gc=False):
    """What ``normalise`` reads of Arctic Shift's ``_meta``."""

    retrieved_2nd_on: _EPOCH = None
    was_deleted_later: bool | None = None
    is_edited: bool | None = None


class _Line(msgspec.Struct, rename={"meta": "_meta"}, gc=False):
    """The fields of a dump object that ``normalise`` reads, each with the types the fast path takes:
    msgspec checks them while it parses (in C), and a line with another type anywhere takes the slow path.
    ``link_id``, ``body`` and ``title`` tell absent from null: their presence decides post or comment."""

    id: str | None = None
    subreddit: str | None = None
    created_utc: _INT64 | float | str | None = None
    edited: bool | _INT64 | float | None = None
    retrieved_on: _EPOCH = None
    retrieved_utc: _EPOCH = None
    updated_on: _EPOCH = None
    meta: _Meta | None = None
    removed_by_category: str | None = None
    permalink: str | None = None
    link_id: str | None | msgspec.UnsetType = _UNSET
    parent_id: str | None = None
    body: str | None | msgspec.UnsetType = _UNSET
    title: str | None | msgspec.UnsetType = _UNSET
    selftext: str | None = None
    is_self: bool | None = None
    url: str | None = None
    link_flair_text: str | None = None
    author: str | None = None
    score: _INT64 | None = None
    num_comments: _INT64 | None = None


_DECODE = msgspec.json.Decoder(_Line).decode
_NO_META = _Meta()
_NOTHING = _Line()  # stands in for a slow row's line
_NO_TEXT = pa.scalar(None, pa.string())
_NO_INT = pa.scalar(None, pa.int64())


def read_block(block: DumpBlock, settings: Settings) -> Batch:
    """One block of a dump as a prepared Batch (what ``run_job`` makes of ``block()``, row for row)."""
    stats = ReadStats()
    counts = stats.file(block.path)
    lines = block.block.split(b"\n")
    parsed = _parse(lines)
    n = len(parsed)
    slow = np.zeros(n, bool)
    if None in parsed:
        slow[[row for row, p in enumerate(parsed) if p is None]] = True
        parsed = [_NOTHING if p is None else p for p in parsed]
    low, high = settings.plausible
    columns = _columns(parsed, slow, high)
    seconds = columns.pop("_created")
    plausible = pc.and_(pc.greater_equal(seconds, low), pc.less(seconds, high))
    _mark(slow, pc.invert(pc.fill_null(plausible, False)))

    fast = pa.array(~slow)
    wanted, since, until = block.options
    keep = fast
    filtered = 0
    if wanted is not None:
        lowered = pc.utf8_lower(columns["community"])
        chosen = pc.fill_null(pc.is_in(lowered, value_set=pa.array(sorted(wanted), pa.string())), False)
        filtered += pc.sum(pc.and_(keep, pc.invert(chosen))).as_py() or 0
        keep = pc.and_(keep, chosen)
    if since != float("-inf") or until != float("inf"):
        inside = pc.fill_null(pc.and_(pc.greater_equal(seconds, since), pc.less(seconds, until)), False)
        filtered += pc.sum(pc.and_(keep, pc.invert(inside))).as_py() or 0
        keep = pc.and_(keep, inside)
    profiles = 0
    if settings.user_profiles == "exclude":
        profile = pc.fill_null(pc.starts_with(pc.utf8_lower(columns["community"]), "u_"), False)
        profiles = pc.sum(pc.and_(keep, profile)).as_py() or 0
        keep = pc.and_(keep, pc.invert(profile))
    if filtered:
        counts["filtered"] += filtered
    fast_rows = int(n - slow.sum())
    if fast_rows:
        counts["lines"] += fast_rows

    items, positions = _slow_items(block, lines, np.flatnonzero(slow), counts)
    kept: list[int] = []
    rest = normalise_items(items, label=settings.label, plausible=settings.plausible,
                           user_profiles=settings.user_profiles, stats=stats, kept=kept)
    batch = Batch(stats=stats, quarantined=rest.quarantined, profiles_left_out=rest.profiles_left_out + profiles)
    tables, order = [], []
    chosen_rows = pc.indices_nonzero(keep)
    if len(chosen_rows):
        whole = len(chosen_rows) == n  # the usual block: every row kept, nothing to copy
        arrays = columns if whole else {name: array.take(chosen_rows) for name, array in columns.items()}
        tables.append(prepare_arrays(arrays, len(chosen_rows), settings.pseudonymiser, settings.kind,
                                     settings.run_id))
        order.append(chosen_rows.to_numpy())
    if rest.records:
        tables.append(prepare_table(rest, settings.pseudonymiser, settings.kind, settings.run_id))
        order.append(np.asarray([positions[k] for k in kept], dtype=np.int64))
    batch.records = sum(t.num_rows for t in tables)
    if len(tables) == 1:
        batch.table = tables[0]
    elif tables:
        batch.table = pa.concat_tables(tables).combine_chunks().take(pa.array(np.argsort(np.concatenate(order),
                                                                                         kind="stable")))
    return batch


def _parse(lines: list[bytes]) -> list[_Line | None]:
    """Each line's fields; None where msgspec cannot read it (not JSON, not an object, blank, a value out of
    its range): such a line takes the slow path, which parses it with orjson as the reference does."""
    try:
        return list(map(_DECODE, lines))
    except Exception:  # noqa: BLE001  (DecodeError, ValidationError, RecursionError: the slow path decides)
        parsed: list[_Line | None] = []
        for line in lines:
            try:
                parsed.append(_DECODE(line))
            except Exception:  # noqa: BLE001
                parsed.append(None)
        return parsed


def _slow_items(block: DumpBlock, lines: list[bytes], rows: np.ndarray, counts: Any) -> tuple[list, list[int]]:
    """The slow rows through ``DumpBlock``'s own loop (orjson, ``normalise``): records, Rejected lines, and
    the row each came from."""
    items: list = []
    positions: list[int] = []
    for row in rows.tolist():
        line = lines[row]
        if not line.strip():
            continue
        counts["lines"] += 1
        lineno = block.first_line + row
        obj = parse_line(f"{block.path}:{lineno}", line, counts)
        if type(obj) is dict:
            obj = _record(block.path, lineno, line, obj, block.options, counts)
        if obj is not None:
            items.append(obj)
            positions.append(row)
    return items, positions


def _columns(parsed: list[_Line], slow: np.ndarray, high: float) -> dict[str, pa.Array]:
    """The record fields of every row as arrays (``normalise`` of miners/reddit_dumps.py per column); rows
    whose values need the general code are marked in ``slow`` (their values here are meaningless)."""
    n = len(parsed)

    def take(key: str) -> list:
        return list(map(attrgetter(key), parsed))

    def text(key: str, values: list | None = None) -> pa.Array:
        return pa.array(take(key) if values is None else values, pa.string())

    links, bodies, titles = take("link_id"), take("body"), take("title")
    is_comment = pa.array([link is not _UNSET or (body is not _UNSET and title is _UNSET)
                           for link, body, title in zip(links, bodies, titles)], pa.bool_())
    links, bodies, titles = ([None if v is _UNSET else v for v in values] for values in (links, bodies, titles))
    record_id = text("id")
    community = text("subreddit")
    for names in (record_id, community):
        _mark(slow, pc.invert(pc.fill_null(pc.match_substring_regex(names, _NAME), False)))
    created = _seconds(take("created_utc"), slow, strings=True)

    edited = take("edited")
    edited_at = pa.nulls(n, pa.int64())
    if set(map(type, edited)) <= _FLAG:
        is_edited = pc.fill_null(pa.array(edited, pa.bool_()), False)
    else:  # an epoch: edited then, unless 0 or 1 (flags written as numbers: the slow path)
        flags = pc.fill_null(pa.array([v if v.__class__ is bool else None for v in edited], pa.bool_()), False)
        edited_at = _seconds([None if v.__class__ is bool else v for v in edited], slow)
        _mark(slow, pc.fill_null(pc.less_equal(edited_at, 1), False))
        is_edited = pc.or_(flags, pc.is_valid(edited_at))

    retrievals = [_seconds(take(key), slow) for key in ("retrieved_on", "retrieved_utc", "updated_on")]
    metas = take("meta")
    deleted_later = pa.nulls(n, pa.bool_())
    if any(m is not None for m in metas):
        meta = [_NO_META if m is None else m for m in metas]
        retrievals.append(_seconds(list(map(attrgetter("retrieved_2nd_on"), meta)), slow))
        deleted_later = pa.array(list(map(attrgetter("was_deleted_later"), meta)), pa.bool_())
        meta_edited = pa.array(list(map(attrgetter("is_edited"), meta)), pa.bool_())
        is_edited = pc.or_(is_edited, pc.fill_null(meta_edited, False))
    retrieved = pc.max_element_wise(*retrievals, skip_nulls=True)
    for moment in (edited_at, retrieved):  # a time after the range's end is nulled and counted: slow
        _mark(slow, pc.fill_null(pc.greater_equal(moment, high), False))

    by_category = text("removed_by_category")
    removal = pc.if_else(pc.fill_null(deleted_later, False), pa.scalar("deleted_later"),
                         pc.if_else(pc.equal(by_category, ""), _NO_TEXT, by_category))

    link_id = text("link_id", links)
    _mark(slow, pc.and_(is_comment, pc.invert(pc.fill_null(pc.match_substring_regex(link_id, _NAME), False))))
    thread = _strip_prefix(link_id)
    _mark(slow, pc.and_(is_comment, pc.fill_null(pc.equal(thread, ""), True)))
    parent = text("parent_id")
    parent = pc.if_else(pc.fill_null(pc.not_equal(parent, ""), False), parent,
                        pc.binary_join_element_wise("t3_", thread, ""))
    parent_kind = pc.if_else(pc.starts_with(parent, "t1_"), pa.scalar("comment"), pa.scalar("post"))
    parent_uid = pc.binary_join_element_wise("reddit:", parent_kind, ":", _strip_prefix(parent), "")
    kind = pc.if_else(is_comment, pa.scalar("comment"), pa.scalar("post"))

    permalink = text("permalink")
    built = pc.binary_join_element_wise("/r/", community, "/comments/", thread, "/_/", record_id, "/", "")
    permalink = pc.if_else(pc.and_(is_comment, pc.fill_null(pc.equal(permalink, ""), True)), built, permalink)
    url = pc.if_else(pc.fill_null(pc.starts_with(permalink, "/"), False),
                     pc.binary_join_element_wise(REDDIT, permalink, ""), permalink)
    is_self = pa.array(take("is_self"), pa.bool_())
    return {
        "_created": created,
        "uid": pc.binary_join_element_wise("reddit:", kind, ":", record_id, ""),
        "kind": kind,
        "id": record_id,
        "parent_uid": pc.if_else(is_comment, parent_uid, _NO_TEXT),
        "thread_uid": pc.binary_join_element_wise("reddit:post:", pc.if_else(is_comment, thread, record_id), ""),
        "author": text("author"),
        "created_at": pc.multiply(created, 1_000_000).cast(TS),
        "title": pc.if_else(is_comment, _NO_TEXT, text("title", titles)),
        "body": pc.if_else(is_comment, text("body", bodies), text("selftext")),
        "url": url,
        "link_url": pc.if_else(pc.or_(is_comment, pc.fill_null(is_self, False)), _NO_TEXT, text("url")),
        "flair": text("link_flair_text"),
        "score": pa.array(take("score"), pa.int64()),
        "num_comments": pc.if_else(is_comment, _NO_INT, pa.array(take("num_comments"), pa.int64())),
        "removal": removal,
        "is_edited": is_edited,
        "edited_at": pc.multiply(edited_at, 1_000_000).cast(TS),
        "retrieved_at": pc.multiply(retrieved, 1_000_000).cast(TS),
        "retrieval_estimated": pa.nulls(n, pa.bool_()),
        "platform": pa.array(["reddit"] * n, pa.string()),
        "community": community,
    }


def _mark(slow: np.ndarray, mask: pa.Array | pa.ChunkedArray) -> None:
    slow |= np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _seconds(values: list, slow: np.ndarray, *, strings: bool = False) -> pa.Array:
    """Whole epoch seconds (int64; null where absent); a value that is not a whole number of seconds in
    [1, 1e11] (or, with ``strings``, a string of up to 11 ASCII digits) marks its row slow."""
    kinds = set(map(type, values))
    if str in kinds:
        values = list(values)
        for row, value in enumerate(values):
            if value.__class__ is str:
                if strings and 0 < len(value) <= 11 and value.isascii() and value.isdigit():
                    values[row] = int(value)
                else:
                    values[row] = None
                    slow[row] = True
    if float in kinds:
        numbers = pa.array(values, pa.float64())
        ok = pc.and_(pc.equal(pc.floor(numbers), numbers),
                     pc.and_(pc.greater_equal(numbers, 1), pc.less_equal(numbers, _MAX_SECONDS)))
    else:
        numbers = pa.array(values, pa.int64())
        ok = pc.and_(pc.greater_equal(numbers, 1), pc.less_equal(numbers, _MAX_SECONDS))
    ok = pc.fill_null(ok, True)  # absent: fine
    _mark(slow, pc.invert(ok))
    return pc.if_else(ok, numbers, pa.scalar(None, numbers.type)).cast(pa.int64())


def _strip_prefix(fullnames: pa.Array) -> pa.Array:
    """``_strip_prefix`` of miners/reddit_dumps.py per element: ``t1_`` / ``t3_`` removed."""
    prefixed = pc.fill_null(pc.or_(pc.starts_with(fullnames, "t1_"), pc.starts_with(fullnames, "t3_")), False)
    return pc.if_else(prefixed, pc.utf8_slice_codeunits(fullnames, 3), fullnames)
