"""Batched ingest: the same rules as the record-at-a-time loop of miners/ingest.py, a batch at a time.

Each record still passes ``normalise_record`` (miners/records.py), one by one, and what it rejects is
quarantined with its reason, in input order. What is done per batch instead of per record:

- a source with ``batch_jobs`` (reddit.dumps.v1) hands out blocks of lines that are parsed and normalised in
  worker processes (``workers``), while the main process decompresses the next blocks, pseudonymises and
  stages; results are taken in input order, so the lake is the same as with one process;
- records become Arrow columns once (no per-partition lists of dicts);
- pseudonyms are computed once per distinct author (HMAC, cached across batches), text fields are searched
  for ``u/`` mentions by Arrow and only the rows that may hold one are rewritten, deletion is applied to
  whole columns, communities are slugged once per distinct name.

``tests/test_batched_ingest.py`` checks that both paths write the same lake, row for row, and the same
quarantine.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from edumine.miners.base import BadRecord, ReadStats, Rejected
from edumine.miners.records import normalise_record
from edumine.privacy import Pseudonymiser
from edumine.schema import DELETED_TEXT, FILE_SCHEMA, TS, UTC, community_slug

log = logging.getLogger("edumine.miners.ingest")

BATCH_RECORDS = 10_000  # records per batch for sources read record by record
TEXT_FIELDS = ("title", "body", "url", "link_url", "flair")  # every free-text field that can name a person
_RECORD_NAMES = tuple(FILE_SCHEMA.names)
# Rows whose text may hold a username: a superset of Pseudonymiser.text's own test (RE2 folds case more widely).
_MAY_NAME = r"(?i)u/|user/|r/u_"
_DELETED_MARK = r"\[(?:deleted|removed)\]"  # one regex pass: several times faster than two substring searches
_TIMES = ("created_at", "edited_at", "retrieved_at")  # aware datetimes, as normalise_record leaves them
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
STAGED_SCHEMA = pa.schema(list(FILE_SCHEMA) + [pa.field("platform", pa.string()), pa.field("community", pa.string()),
                                               pa.field("month", pa.string())])


def is_user_profile(community: str) -> bool:
    """Reddit keeps a user's own posts in the pseudo-subreddit ``u_<name>``: its very name is a username."""
    return community.strip().lower().removeprefix("r/").startswith("u_")


@dataclass
class Batch:
    """What one batch of input became: records as columns (authors and text still raw), and in input order
    what was quarantined: a ``Rejected`` from the source, or (location, reason, detail, record) from
    ``normalise_record``."""

    columns: dict[str, list] = field(default_factory=dict)
    table: pa.Table | None = None  # the columns prepared for the lake (``prepare_table``)
    quarantined: list[Rejected | tuple[str, str, str, Any]] = field(default_factory=list)
    stats: ReadStats = field(default_factory=ReadStats)
    profiles_left_out: int = 0
    records: int = 0


def normalise_items(items: Iterable[Any], *, label: str, plausible: tuple[float, float],
                    user_profiles: str, stats: ReadStats | None = None, kept: list[int] | None = None) -> Batch:
    """Every item through ``normalise_record``, the records kept as columns; ``kept`` receives the index
    (in ``items``) of each record kept."""
    batch = Batch(stats=stats if stats is not None else ReadStats())
    rows: list[dict] = []
    profiles: dict[str, bool] = {}
    counters: dict[str, Any] = {}
    exclude = user_profiles == "exclude"
    for index, item in enumerate(items):
        if isinstance(item, Rejected):
            batch.quarantined.append(item)
            continue
        if exclude and isinstance(item, dict):
            community = str(item.get("community") or "")
            profile = profiles.get(community)
            if profile is None:
                profile = profiles[community] = is_user_profile(community)
            if profile:
                batch.profiles_left_out += 1
                continue
        location = str(item.get("_file") or label) if isinstance(item, dict) else label
        counts = counters.get(location)
        if counts is None:
            counts = counters[location] = batch.stats.file(location)
        try:
            rows.append(normalise_record(item, plausible=plausible, counts=counts))
            if kept is not None:
                kept.append(index)
        except BadRecord as exc:
            batch.quarantined.append((location, exc.reason, exc.detail, item))
        except Exception as exc:  # noqa: BLE001  (no value of any field may abort the run)
            log.warning("source %s: unexpected %s normalising a record; quarantined", label, type(exc).__name__)
            batch.quarantined.append((location, "bad_record", f"{type(exc).__name__}: {exc}", item))
    batch.records = len(rows)
    names = _RECORD_NAMES + ("platform", "community")
    values = zip(*map(itemgetter(*names), rows)) if rows else ([] for _ in names)
    batch.columns = dict(zip(names, values))
    return batch


@dataclass(frozen=True)
class Settings:
    """What reading a batch needs besides the batch (sent once per job to a worker process)."""

    label: str
    kind: str
    run_id: str
    plausible: tuple[float, float]
    user_profiles: str
    pseudonymiser: Pseudonymiser
    columnar: bool = True  # a job that can (a dump block) is read column by column; False: record by record


def run_job(job: Callable[[], tuple[list, ReadStats]] | Iterable[Any], settings: Settings,
            stats: ReadStats | None = None) -> Batch:
    """A source's batch job (or a list of items), read, normalised and prepared for the lake (in a worker
    process, or in this one); the columns are dropped once they are a table (they would cross processes)."""
    if settings.columnar and hasattr(job, "read_batch"):  # a block read column by column (miners/dump_columns.py)
        return job.read_batch(settings)
    if callable(job):
        items, stats = job()
    else:
        items = job
    batch = normalise_items(items, label=settings.label, plausible=settings.plausible,
                            user_profiles=settings.user_profiles, stats=stats)
    if batch.records:
        batch.table = prepare_table(batch, settings.pseudonymiser, settings.kind, settings.run_id)
    batch.columns = {}
    return batch


def prepare_table(batch: Batch, pseudonymiser: Pseudonymiser, kind: str, run_id: str) -> pa.Table:
    """``prepare`` of miners/ingest.py for a whole batch: the columns as a table of STAGED_SCHEMA."""
    columns = batch.columns
    arrays: dict[str, pa.Array] = {}
    for name in _RECORD_NAMES:
        if name in ("author", "is_deleted", "source", "ingest_run") or name in TEXT_FIELDS:
            continue
        if name in _TIMES:  # aware datetimes as exact microseconds: twice as fast as pa.array converts them
            micros = [None if moment is None else (moment - _EPOCH) // _MICROSECOND for moment in columns[name]]
            arrays[name] = pa.array(micros, pa.int64()).cast(TS)
        else:
            arrays[name] = pa.array(columns[name], FILE_SCHEMA.field(name).type)
    arrays["author"] = pa.array(columns["author"], pa.string())
    for name in TEXT_FIELDS:
        arrays[name] = pa.array(columns[name], pa.string())
    arrays["platform"] = pa.array(columns["platform"], pa.string())
    arrays["community"] = pa.array([str(c) for c in columns["community"]], pa.string())
    return prepare_arrays(arrays, batch.records, pseudonymiser, kind, run_id)


def prepare_arrays(arrays: dict[str, pa.Array], n: int, pseudonymiser: Pseudonymiser, kind: str,
                   run_id: str) -> pa.Table:
    """Normalised records as Arrow arrays (authors, text and communities still raw; times as TS) prepared
    for the lake: pseudonyms, deletion, community slugs and months, as a table of STAGED_SCHEMA."""
    arrays = dict(arrays)
    authors = arrays["author"].dictionary_encode()
    names = authors.dictionary.to_pylist()
    arrays["author"] = pa.array(pseudonymiser.authors(names), pa.string()).take(authors.indices)
    texts = {name: _pseudonymised_text(arrays[name], pseudonymiser) for name in TEXT_FIELDS}
    _apply_deletion(texts, arrays)
    arrays.update(texts)
    arrays["source"] = pa.array([kind] * n, pa.string())
    arrays["ingest_run"] = pa.array([run_id] * n, pa.string())
    raw = arrays["community"].dictionary_encode()
    slugs = [community_slug(pseudonymiser.profile(c.strip().removeprefix("r/")) if is_user_profile(c) else c)
             for c in raw.dictionary.to_pylist()]
    arrays["community"] = pa.array(slugs, pa.string()).take(raw.indices)
    arrays["month"] = _months(arrays["created_at"])
    return pa.table([arrays[f.name] for f in STAGED_SCHEMA], schema=STAGED_SCHEMA)


def _months(created: pa.Array) -> pa.Array:
    """``month_of`` of every time, formatted once per distinct month."""
    codes = pc.add(pc.multiply(pc.year(created), 100), pc.month(created)).dictionary_encode()
    labels = [f"{code // 100:04d}-{code % 100:02d}" for code in codes.dictionary.to_pylist()]
    return pa.array(labels, pa.string()).take(codes.indices)


def _pseudonymised_text(array: pa.Array, pseudonymiser: Pseudonymiser) -> pa.Array:
    if not len(array):
        return array
    maybe = pc.fill_null(pc.match_substring_regex(array, _MAY_NAME), False)
    if not pc.any(maybe).as_py():
        return array
    # only the rows that may name someone become Python strings
    rewritten = [pseudonymiser.text(value) for value in array.filter(maybe).to_pylist()]
    return pc.replace_with_mask(array, maybe, pa.array(rewritten, pa.string()))


def _apply_deletion(texts: dict[str, pa.Array], arrays: dict[str, pa.Array]) -> None:
    """``apply_deletion`` of edumine/schema.py on whole columns (text already pseudonymised, as there)."""
    body, removal = texts["body"], arrays["removal"]
    maybe = pc.fill_null(pc.and_(pc.is_null(removal), pc.match_substring_regex(body, _DELETED_MARK)), False)
    if len(body) and pc.any(maybe).as_py():
        marks = [stripped[1:-1] if (stripped := value.strip()) in DELETED_TEXT else None
                 for value in body.filter(maybe).to_pylist()]
        removal = arrays["removal"] = pc.replace_with_mask(removal, maybe, pa.array(marks, pa.string()))
    deleted = pc.is_valid(removal)
    arrays["is_deleted"] = deleted
    for name in ("title", "body", "link_url"):
        texts[name] = pc.if_else(deleted, pa.scalar(None, pa.string()), texts[name])


def batches(source: Any, stats: ReadStats, settings: Settings, *, workers: int) -> Iterator[Batch]:
    """The source's input as prepared Batches, in input order; ``stats`` receives what was read."""
    if not hasattr(source, "batch_jobs"):
        items = iter(source.read(stats))
        while chunk := list(islice(items, BATCH_RECORDS)):
            yield run_job(chunk, settings, stats)
        return
    jobs = source.batch_jobs(stats)
    if workers and multiprocessing.current_process().daemon:  # e.g. a Dask worker: it may not have children
        log.info("source %s: reading in this process (a daemonic process cannot start workers)", settings.label)
        workers = 0
    if workers < 1:
        for job in jobs:
            yield _merged(_rejected_batch(job) if isinstance(job, Rejected) else run_job(job, settings), stats)
        return
    # spawn: the collecting process holds threads (Prefect, the reader) that a fork would copy half-way.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_set_worker,
                             initargs=(settings,)) as pool:
        pending: deque[tuple[Any, Future | None]] = deque()
        broken = False
        for job in jobs:
            if isinstance(job, Rejected) or broken:
                pending.append((job, None))
            else:
                pending.append((job, pool.submit(_run_in_worker, job)))
            while len(pending) > 2 * workers or (pending and pending[0][1] is None):
                batch, broken = _result(*pending.popleft(), broken, settings)
                yield _merged(batch, stats)
        while pending:
            batch, broken = _result(*pending.popleft(), broken, settings)
            yield _merged(batch, stats)


_WORKER: dict[str, Settings] = {}


def _set_worker(settings: Settings) -> None:
    """A worker process keeps the settings (and its pseudonymiser's cache) for all its jobs."""
    _WORKER["settings"] = settings


def _run_in_worker(job: Callable[[], tuple[list, ReadStats]]) -> Batch:
    return run_job(job, _WORKER["settings"])


def _result(job: Any, future: Future | None, broken: bool, settings: Settings) -> tuple[Batch, bool]:
    """A job's Batch, from its worker; read here when there was no worker or the pool broke (a worker
    killed, or a script without ``if __name__ == "__main__":`` that a spawned worker cannot import)."""
    if isinstance(job, Rejected):
        return _rejected_batch(job), broken
    if future is not None:
        try:
            return future.result(), broken
        except BrokenProcessPool as exc:
            if not broken:
                log.warning("source %s: the worker processes stopped (%s); reading on in this process",
                            settings.label, exc)
            broken = True
    return run_job(job, settings), broken


def _rejected_batch(rejected: Rejected) -> Batch:
    return Batch(quarantined=[rejected])


def _merged(batch: Batch, stats: ReadStats) -> Batch:
    """``batch`` with its per-file counts added to ``stats`` (the run's), in the order files were first seen."""
    if batch.stats is not stats:
        for path, counts in batch.stats.files.items():
            stats.file(path).update(counts)
    return batch


def default_workers(source: Any) -> int:
    """Worker processes for a source's batch jobs: one per idle core for large dumps (the main process
    decompresses, pseudonymises and stages meanwhile); none for small inputs, or on a machine whose cores are
    all busy already (there, starting workers costs more than they give back)."""
    configured = getattr(source, "workers", None)
    if configured is not None:
        return max(int(configured), 0)
    if not hasattr(source, "batch_jobs") or not hasattr(source, "files"):
        return 0
    size = sum(path.stat().st_size for path in source.files()[0] if path.exists())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    idle = int(cores - os.getloadavg()[0] + 0.5)
    workers = min(cores, idle, 8)
    return workers if size >= 32 * 2**20 and workers >= 1 and cores > 1 else 0
