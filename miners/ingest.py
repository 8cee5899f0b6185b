"""Ingest: the one path from a source into the lake.

Every record passes here, so no source can forget the rules: authors and ``u/`` mentions are
pseudonymised, deleted content loses its text, communities get one spelling, and what cannot be read is
quarantined with its reason and counted (never dropped silently).
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from edumine.lake import Lake, PostsWriter, QuarantineWriter
from edumine.miners.base import BadRecord, ReadStats, Rejected
from edumine.miners.batches import TEXT_FIELDS, Settings, batches, default_workers, is_user_profile  # noqa: F401
from edumine.miners.records import normalise_record, plausible_range
from edumine.privacy import Pseudonymiser
from edumine.progress import Progress
from edumine.schema import apply_deletion, community_slug, month_of

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    label: str
    kind: str
    files: dict[str, dict[str, int]] = field(default_factory=dict)
    unmatched_patterns: list[str] = field(default_factory=list)
    records: int = 0
    filtered: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    added: int = 0
    updated: int = 0
    duplicates: int = 0
    partitions_rewritten: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)  # what a live source reports beyond counts

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quarantined_total"] = self.quarantined_total
        return data


def prepare(record: dict, pseudonymiser: Pseudonymiser, kind: str, run_id: str) -> tuple[dict, tuple[str, str, str]]:
    record["author"] = pseudonymiser.author(record.get("author"))
    for name in TEXT_FIELDS:
        record[name] = pseudonymiser.text(record.get(name))
    apply_deletion(record)
    community = str(record["community"])
    if is_user_profile(community):
        community = pseudonymiser.profile(community.strip().removeprefix("r/"))
    record["community"] = community_slug(community)
    record["source"] = kind
    record["ingest_run"] = run_id
    return record, (record["platform"], record["community"], month_of(record["created_at"]))


def ingest_source(source: Any, *, label: str, kind: str, lake: Lake, run_id: str,
                  pseudonymiser: Pseudonymiser, chunk_rows: int = 50_000,
                  user_profiles: str = "exclude", plausible: tuple[float, float] | None = None,
                  batched: bool = True, workers: int | None = None,
                  skip_unchanged_files: bool = False) -> SourceReport:
    """Read one source completely and merge it into the lake. Never raises on bad input: every record passes
    ``normalise_record`` (miners/records.py) and what it rejects is quarantined with its reason.

    ``batched`` (the default) takes the input a batch at a time (miners/batches.py: Arrow columns, one
    pseudonym per distinct author, dumps parsed in ``workers`` processes, by default one per core for large
    dumps); ``batched=False`` is the record-at-a-time loop, kept as the reference the batched path must equal.

    ``skip_unchanged_files``: a file source leaves out the files it read completely before and that have not
    changed since (miners/file_ledger.py); they count as ``unchanged_files`` in the report's notes."""
    started = time.perf_counter()
    plausible = plausible or plausible_range()
    report = SourceReport(label=label, kind=kind)
    if hasattr(source, "files"):
        files, report.unmatched_patterns = source.files()
        if report.unmatched_patterns:
            log.warning("source %s: no file matches %s", label, report.unmatched_patterns)
    ledger = None
    if skip_unchanged_files and hasattr(source, "skip"):
        from edumine.miners.file_ledger import FileLedger, source_identity

        ledger = FileLedger(lake.root, kind, source_identity(source, kind, {
            "key_id": pseudonymiser.key_id, "user_profiles": user_profiles, "plausible_since": plausible[0]}))
        source.skip = frozenset(ledger.unchanged(files))
        if source.skip:
            report.notes["unchanged_files"] = len(source.skip)
            log.info("source %s: %d of %d files unchanged since they were collected; not read again", label,
                     len(source.skip), len(files))
    if hasattr(source, "bind"):  # a live source (miners/live.py) loads its high-water marks from the lake
        source.bind(lake=lake, run_id=run_id, label=label)
    stats = ReadStats()
    writer = PostsWriter(lake, run_id, chunk_rows=chunk_rows)
    quarantine = QuarantineWriter(lake, run_id, label)
    with Progress(f"collecting {label}", unit="records", logger=log, summary=False) as progress:
        if batched:
            workers = default_workers(source) if workers is None else workers
            if workers:
                log.info("source %s: reading in %d worker processes", label, workers)
            report.records, profiles_left_out = _ingest_batches(
                source, stats, writer, quarantine, pseudonymiser, progress, label=label, kind=kind, run_id=run_id,
                plausible=plausible, user_profiles=user_profiles, workers=workers)
        else:
            report.records, profiles_left_out = _ingest_records(
                source, stats, writer, quarantine, pseudonymiser, progress, label=label, kind=kind, run_id=run_id,
                plausible=plausible, user_profiles=user_profiles)
        quarantine.flush()
        with merge_lock(lake):
            merged = writer.commit()
    if hasattr(source, "commit"):  # only now, with its records merged, may a live source advance its marks
        source.commit()
    if ledger is not None:  # likewise: the files are recorded as read once their records are in the lake
        ledger.commit({path for path, counts in stats.files.items() if counts.get("unreadable")}, run_id)
    if hasattr(source, "notes"):
        report.notes = source.notes()
    report.files = {path: dict(counts) for path, counts in stats.files.items() if counts}
    report.filtered = stats.total()["filtered"] + profiles_left_out
    if profiles_left_out:
        report.notes["user_profile_records_left_out"] = profiles_left_out
    report.quarantined = dict(Counter(quarantine.by_reason))
    report.added, report.updated = merged.added, merged.updated
    report.duplicates, report.partitions_rewritten = merged.duplicates, merged.partitions_rewritten
    report.seconds = round(time.perf_counter() - started, 3)
    log.info("source %s: %d records (%d added, %d updated, %d duplicates), %d filtered, %d quarantined in %.1fs",
             label, report.records, report.added, report.updated, report.duplicates, report.filtered,
             report.quarantined_total, report.seconds)
    return report


def _ingest_batches(source: Any, stats: ReadStats, writer: PostsWriter, quarantine: QuarantineWriter,
                    pseudonymiser: Pseudonymiser, progress: Progress, *, label: str, kind: str, run_id: str,
                    plausible: tuple[float, float], user_profiles: str, workers: int) -> tuple[int, int]:
    records = profiles_left_out = 0
    settings = Settings(label=label, kind=kind, run_id=run_id, plausible=plausible, user_profiles=user_profiles,
                        pseudonymiser=pseudonymiser)
    for batch in batches(source, stats, settings, workers=workers):
        for entry in batch.quarantined:
            if isinstance(entry, Rejected):
                _quarantine_rejected(quarantine, stats, pseudonymiser, entry)
            else:
                _reject(quarantine, stats, pseudonymiser, *entry)
        profiles_left_out += batch.profiles_left_out
        if batch.table is not None:
            writer.add_table(batch.table)
            records += batch.records
            progress.advance(batch.records)
    return records, profiles_left_out


def _ingest_records(source: Any, stats: ReadStats, writer: PostsWriter, quarantine: QuarantineWriter,
                    pseudonymiser: Pseudonymiser, progress: Progress, *, label: str, kind: str, run_id: str,
                    plausible: tuple[float, float], user_profiles: str) -> tuple[int, int]:
    records = profiles_left_out = 0
    for item in source.read(stats):
        if isinstance(item, Rejected):
            _quarantine_rejected(quarantine, stats, pseudonymiser, item)
            continue
        if user_profiles == "exclude" and isinstance(item, dict) and \
                is_user_profile(str(item.get("community") or "")):
            profiles_left_out += 1
            continue
        location = _location(item, label)
        try:
            record, key = prepare(normalise_record(item, plausible=plausible, counts=stats.file(location)),
                                  pseudonymiser, kind, run_id)
        except BadRecord as exc:
            _reject(quarantine, stats, pseudonymiser, location, exc.reason, exc.detail, item)
            continue
        except Exception as exc:  # noqa: BLE001  (no value of any field may abort the run)
            log.warning("source %s: unexpected %s normalising a record; quarantined", label, type(exc).__name__)
            _reject(quarantine, stats, pseudonymiser, location, "bad_record", f"{type(exc).__name__}: {exc}", item)
            continue
        writer.add(record, key)
        records += 1
        if records % 10_000 == 0:
            progress.advance(10_000)
    return records, profiles_left_out


def _quarantine_rejected(quarantine: QuarantineWriter, stats: ReadStats, pseudonymiser: Pseudonymiser,
                         item: Rejected) -> None:
    quarantine.add(item.location, item.reason, pseudonymiser.excerpt(item.detail, 500),
                   pseudonymiser.excerpt(item.raw, personal=item.personal))
    counts = stats.file(item.location.split(":", 1)[0])
    counts["quarantined"] += 1
    if item.reason == "unreadable_file":  # read again next time, even if unchanged (miners/file_ledger.py)
        counts["unreadable"] += 1


def _location(item: Any, label: str) -> str:
    """The file a record came from, for the per-file counts (sources name it ``_file`` or not at all)."""
    return str(item.get("_file") or label) if isinstance(item, dict) else label


def _reject(quarantine: QuarantineWriter, stats: ReadStats, pseudonymiser: Pseudonymiser, location: str,
            reason: str, detail: str, item: Any) -> None:
    # A built record as a dict: its author field (and a user-profile community) are names.
    shown = {k: v for k, v in item.items()} if isinstance(item, dict) else {"record": repr(item)[:2000]}
    personal = ("author",) + (("community",) if is_user_profile(str(shown.get("community") or "")) else ())
    quarantine.add(f"{location}:{shown.get('uid') or '?'}", reason, pseudonymiser.excerpt(detail, 500),
                   pseudonymiser.excerpt(shown, personal=personal))
    stats.file(location)["quarantined"] += 1


_MERGE_LOCK = threading.Lock()


@contextmanager
def merge_lock(lake: Lake) -> Iterator[None]:
    """One merge into the lake at a time: sources collected concurrently (threads of a Dask task runner, or
    workers in other processes on a shared filesystem) may touch the same partitions."""
    with _MERGE_LOCK:
        lake.root.mkdir(parents=True, exist_ok=True)
        with open(lake.root / ".merge.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
