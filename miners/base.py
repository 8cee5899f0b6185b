"""What every source shares: its config base, the rejected-record shape, file expansion, time parsing."""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, field_validator

from edumine.config import StrictModel
from edumine.files import expand_paths  # noqa: F401  (sources import it from here)
from edumine.schema import UTC, BadRecord  # noqa: F401  (BadRecord is re-exported: sources import it here)

T = TypeVar("T")


class SourceConfig(StrictModel):
    kind: str
    name: str | None = Field(None, description="label in manifests and quarantine; default '<index>:<kind>'")


class FileSourceConfig(SourceConfig):
    paths: list[str] = Field(min_length=1, description="files or glob patterns, relative to the working directory")
    since: date | datetime | None = None
    until: date | datetime | None = Field(None, description="inclusive; a date means the whole day")

    @field_validator("paths")
    @classmethod
    def _no_empty(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("a path must not be empty")
        return value


class FileListing:
    """A source that reads files: the files its ``paths`` match, less those in ``skip`` (set by ingest to the
    files a collection read before and that have not changed since: miners/file_ledger.py)."""

    paths: list[str]
    skip: frozenset[str] = frozenset()

    def files(self) -> tuple[list[Path], list[str]]:
        paths, unmatched = expand_paths(self.paths)
        return [path for path in paths if str(path) not in self.skip], unmatched


def record_builder(build: Callable[..., T]) -> Callable[..., T]:
    """Decorates a source's record builder so that a field of the wrong type (``int('abc')``, a missing
    key, a list where text belongs) raises ``BadRecord`` like every known problem: the source's own
    ``except BadRecord`` then quarantines that record instead of the error aborting the run."""
    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return build(*args, **kwargs)
        except BadRecord:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, OSError) as exc:
            raise BadRecord("bad_record", f"{type(exc).__name__}: {exc}") from None
    return wrapper


@dataclass(slots=True)
class Rejected:
    """A record that could not be read. ``raw`` is the input line, or the row as a dict whose ``personal``
    fields hold usernames (``("*",)``: its columns cannot be aligned, any bare name-like field may be one)."""

    location: str
    reason: str
    detail: str
    raw: str | dict = ""
    personal: tuple[str, ...] = ()


@dataclass
class ReadStats:
    """What a source saw, per input file: lines or rows read, records filtered out, values coerced."""

    files: dict[str, Counter] = field(default_factory=dict)

    def file(self, path: Path | str) -> Counter:
        return self.files.setdefault(str(path), Counter())

    def total(self) -> Counter:
        total: Counter = Counter()
        for counts in self.files.values():
            total.update(counts)
        return total


def time_bounds(since: date | datetime | None, until: date | datetime | None) -> tuple[float, float]:
    """Epoch bounds [low, high) for an inclusive since/until; a bare date covers its whole day."""
    def as_dt(value: date | datetime, end: bool) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = datetime.combine(value, time.min, tzinfo=UTC)
        return moment + timedelta(days=1) if end else moment

    low = as_dt(since, False).timestamp() if since is not None else float("-inf")
    high = as_dt(until, True).timestamp() if until is not None else float("inf")
    if isinstance(until, datetime):
        high = as_dt(until, True).timestamp() + 1e-6
    return low, high


def parse_epoch(value: Any, field_name: str) -> float:
    """Seconds since the epoch from int, float or numeric string (Pushshift eras use all three)."""
    if isinstance(value, bool):  # JSON true is not a time, though float(True) == 1.0
        raise BadRecord("bad_time", f"{field_name}={value!r} is not a number of seconds")
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadRecord("bad_time", f"{field_name}={value!r} is not a number of seconds") from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise BadRecord("bad_time", f"{field_name}={value!r} is not a finite time")
    if seconds > 1e11:  # milliseconds
        seconds /= 1000.0
    return seconds


def parse_time_text(value: Any, field_name: str, fmt: str | None = None) -> float:
    """Epoch seconds from a number, an ISO date/time (``2018/12/02`` too), or ``fmt`` (strptime)."""
    text = str(value).strip() if value is not None else ""
    if not text:
        raise BadRecord("missing_time", f"{field_name} is empty")
    if fmt:
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            raise BadRecord("bad_time", f"{field_name}={text!r} does not match the format {fmt!r}") from None
    else:
        try:
            return parse_epoch(text, field_name)
        except BadRecord:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("/", "-").replace("Z", "+00:00"))
        except ValueError:
            raise BadRecord("bad_time", f"{field_name}={text!r} is neither epoch seconds nor an ISO date; "
                                        "set the source's created_format") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def optional_int(value: Any, stats: Counter, field_name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        stats[f"coerced_to_null:{field_name}"] += 1
        return None
