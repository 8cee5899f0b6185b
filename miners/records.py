"""The one guarded place every record passes before the lake: each field checked and coerced to its type.

Sources build records their own way (dump objects, CSV rows, API replies); ``normalise_record`` makes sure
that whatever a field holds, the record either fits ``FILE_SCHEMA`` exactly or is rejected with a reason
(``BadRecord``), so that no value can abort a run or a merge half way. Decisions (docs/reliability.md):

- ``created_at`` must be a time inside the plausible range (``collect.plausible_time``: 2005-06-01, the
  month Reddit opened, to now + 1 day); anything else, non-numeric, negative, zero, ``true``, year 3000,
  1e20, is quarantined as ``bad_time``.
- ``edited_at`` and ``retrieved_at`` after the range's end, or not representable, become null (counted as
  ``coerced_to_null:<field>``): the post itself is fine, and a retrieval time in year 3000 would otherwise
  win every later merge. Early ones are kept: they only order versions.
- A number where text belongs (``author: 12345``, a numeric title) is kept as its text (counted as
  ``coerced_to_text:<field>``): all-digit Reddit user names exist, and the pseudonymiser hashes the text. A
  list, mapping or other object there is quarantined as ``bad_field:<field>``.
- ``score`` and ``num_comments`` outside int64 are quarantined as ``bad_field:<field>`` (no such count is
  real: the record is corrupt); text that is not a number becomes null, as the sources already do.
- Text that cannot be encoded as UTF-8 (lone surrogates) is repaired with U+FFFD (``repaired_text:<field>``).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any

from edumine.schema import FILE_FIELDS, UTC, BadRecord, plausible_range  # noqa: F401  (re-exported)

INT64 = (-(2**63), 2**63 - 1)
KINDS = frozenset({"post", "comment"})
REQUIRED_TEXT = ("uid", "platform", "community", "kind", "id")
OPTIONAL_TEXT = ("parent_uid", "thread_uid", "title", "body", "url", "link_url", "flair", "removal")
COUNTS = ("score", "num_comments")
FLAGS = ("is_deleted", "is_edited")
_SURROGATE = re.compile("[\ud800-\udfff]")
_FIELD_NAMES = tuple(f.name for f in FILE_FIELDS) + ("platform", "community")


def normalise_record(record: dict[str, Any], *, plausible: tuple[float, float],
                     counts: Counter | None = None) -> dict[str, Any]:
    """A new dict with every lake field of ``record`` checked and coerced; raises ``BadRecord`` when the
    record cannot be stored. ``counts`` receives what was coerced (``coerced_to_text:author``, ...)."""
    counts = counts if counts is not None else Counter()
    if not isinstance(record, dict):
        raise BadRecord("bad_field:record", f"a {type(record).__name__}, not a record")
    get = record.get
    out: dict[str, Any] = dict(zip(_FIELD_NAMES, map(get, _FIELD_NAMES)))
    # Every check below has a fast path for the value a field usually holds (ASCII text, an int, a bool,
    # an aware datetime) that gives what the general helper would; anything else goes through the helper.
    for name in REQUIRED_TEXT:
        value = out[name]
        if value.__class__ is not str or not value.isascii():
            value = _text(value, name, counts)
        if not value or value.isspace():
            raise BadRecord(f"bad_field:{name}", f"{name} is missing or empty")
        out[name] = value
    if out["kind"] not in KINDS:
        raise BadRecord("bad_field:kind", f"kind={out['kind']!r} is neither post nor comment")
    for name in _OPTIONAL_TEXT:
        value = out[name]
        if value is not None and (value.__class__ is not str or not value.isascii()):
            out[name] = _text(value, name, counts)

    created = out["created_at"]
    if created.__class__ is not datetime or created.tzinfo is None:
        created = _time(created, "created_at")
        if created is None:
            raise BadRecord("missing_time", "created_at is missing")
    low, high = plausible
    if not low <= created.timestamp() < high:
        raise BadRecord("bad_time", f"created_at={created.isoformat()} is outside the plausible range "
                                    f"{_iso(low)} .. {_iso(high)} (collect.plausible_time)")
    out["created_at"] = created
    for name in ("edited_at", "retrieved_at"):
        moment = out[name]
        if moment is None:
            continue
        if moment.__class__ is not datetime or moment.tzinfo is None:
            try:
                moment = _time(moment, name)
            except BadRecord:
                moment = None
                counts[f"coerced_to_null:{name}"] += 1
        if moment is not None and moment.timestamp() >= high:  # a future time would win every later merge
            moment = None
            counts[f"coerced_to_null:{name}"] += 1
        out[name] = moment

    for name in COUNTS:
        value = out[name]
        if value is not None and (value.__class__ is not int or not INT64[0] <= value <= INT64[1]):
            out[name] = _count(value, name, counts)
    for name in FLAGS:
        value = out[name]
        if value.__class__ is not bool:
            out[name] = _flag(value, name)
    estimated = out["retrieval_estimated"]
    out["retrieval_estimated"] = bool(estimated) if estimated is not None else None
    return out


_OPTIONAL_TEXT = OPTIONAL_TEXT + ("source", "ingest_run", "author")


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def _text(value: Any, name: str, counts: Counter) -> str | None:
    if value is None or isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)):  # bool too: True -> "True"
        counts[f"coerced_to_text:{name}"] += 1
        text = str(value)
    elif isinstance(value, (bytes, bytearray)):
        counts[f"coerced_to_text:{name}"] += 1
        text = bytes(value).decode("utf-8", "replace")
    else:
        raise BadRecord(f"bad_field:{name}", f"{name} holds a {type(value).__name__}, not text")
    if text is not None and not text.isascii():  # ASCII is valid UTF-8: the common case costs one scan
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from a broken decoder: Parquet needs valid UTF-8
            counts[f"repaired_text:{name}"] += 1
            text = _SURROGATE.sub("\ufffd", text)
    return text


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRecord("bad_time", f"{name}={value!r} is not a time")
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise BadRecord("bad_time", f"{name}={value!r} is not a representable time") from None


def _count(value: Any, name: str, counts: Counter) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        counts[f"coerced_to_null:{name}"] += 1
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            counts[f"coerced_to_null:{name}"] += 1
            return None
        value = int(value)
    elif not isinstance(value, int):
        try:
            value = int(float(str(value)))
        except (TypeError, ValueError, OverflowError):
            counts[f"coerced_to_null:{name}"] += 1
            return None
    if not INT64[0] <= value <= INT64[1]:
        raise BadRecord(f"bad_field:{name}", f"{name}={value} does not fit a 64-bit integer")
    return value


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise BadRecord(f"bad_field:{name}", f"{name}={value!r} is not true or false")
