"""What a stage body is handed and what it hands back: the runner (``pipelines/runner.py``) is the only
code that reads a stage's inputs from the lake and writes its outputs to it.

A stage body is ``run(inputs, params, run) -> StageResult``:

- ``inputs``: ``Inputs``, a mapping from catalog name to a lazy handle: a ``TableInput`` for every declared
  input, optional input and output table (an output's handle shows what the last run left, for incremental
  stages), an ``ArtefactInput`` for artefacts (saved models, caches). Nothing is read until the body asks, and
  ``iter_batches`` / ``read_partition`` keep memory bounded at a million docs.
- ``params``: the stage's config section (pydantic), or ``None`` for a stage without one.
- ``run``: ``RunInfo``, what a stage may know about the run (its id, the window unit, the sections it declared
  in ``Stage.uses``, the manifest so far), and ``run.map``: how to run its per-partition work.

``run.map(function, items)`` returns ``[function(**item) for item in items]``, in that order: in this process by
default, or with ``task_runner: dask`` as one Prefect task per item on Dask workers (``pipelines/task_runners.py``).
So ``function`` is a module-level function, pure (no lake writes, no shared caches filled), and an item holds
what it needs by value or by path (a model's folder in the lake, never an object from the flow's memory).

It returns ``StageResult(outputs={name: Output(...) | Artefact(...)}, summary=..., scores=..., notes=...)``. The
runner writes each output atomically in the order given (``Output`` modes: ``overwrite``, ``append``,
``upsert`` by key columns, ``partitions`` for a partitioned table written partition by partition), then records
the summary in the manifest. ``summary`` may be a callable of the written outputs, evaluated after the writes
(a stage that streams its output only knows its counts once the stream is consumed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from contextlib import contextmanager
from contextvars import ContextVar

from edumine import catalog

log = logging.getLogger(__name__)
_ACTIVE_LAKE: ContextVar[Any] = ContextVar("edumine_active_lake", default=None)


@contextmanager
def active_lake(lake: Any) -> Iterator[None]:
    """While a stage runs: the lake whose artefacts shared components default to (the ONNX export)."""
    token = _ACTIVE_LAKE.set(lake)
    try:
        yield
    finally:
        _ACTIVE_LAKE.reset(token)


def artefact_path(name: str) -> Path | None:
    """The folder of catalog artefact ``name`` in the lake of the stage running now; None outside a stage."""
    lake = _ACTIVE_LAKE.get()
    return None if lake is None else lake.table_path(name)

Mode = Literal["overwrite", "append", "upsert", "partitions"]


@dataclass(frozen=True)
class TableInput:
    """A lazy, read-only view of one catalog table. Every read goes through ``Lake``."""

    lake: Any
    name: str

    def exists(self) -> bool:
        return self.lake.exists(self.name)

    def columns(self) -> list[str]:
        """Column names the stored table has (partition columns included); [] when it is missing."""
        dataset = self.lake.dataset(self.name)
        return [] if dataset is None else list(dataset.schema.names)

    def read(self, columns: list[str] | None = None, filter: Any = None) -> Any:
        """The whole table (or ``columns`` of the rows matching ``filter``); None when it was never written."""
        return self.lake.read(self.name, columns=columns, filter=filter, missing_ok=True)

    def iter_batches(self, columns: list[str] | None = None, filter: Any = None,
                     batch_size: int = 65_536) -> Iterator[Any]:
        """Record batches, for work that needs one pass and bounded memory."""
        dataset = self.lake.dataset(self.name)
        if dataset is None:
            return iter(())
        return iter(dataset.to_batches(columns=columns, filter=filter, batch_size=batch_size))

    def count_rows(self, filter: Any = None) -> int:
        dataset = self.lake.dataset(self.name)
        return 0 if dataset is None else dataset.count_rows(filter=filter)

    def partitions(self) -> list[str]:
        """The stored partitions of a partitioned table (``platform=x/community=y/month=z``), sorted."""
        return self.lake.partitions(self.name)

    def partition_signature(self, partition: str) -> str | None:
        """An opaque signature of a partition's file that changes whenever the partition is written."""
        return self.lake.partition_signature(self.name, partition)

    def read_partition(self, partition: str, columns: list[str] | None = None, schema: Any = None) -> Any:
        """One partition's rows (without the partition columns); None when it is missing. A damaged file raises
        ``CorruptTable``: the runner removes a derived one and its owner stage rebuilds it (edumine/integrity.py)."""
        return self.lake.read_partition(self.name, partition, columns=columns, schema=schema)


@dataclass(frozen=True)
class ArtefactInput:
    """A catalog artefact (a folder of saved models, an embedding cache). Model code that loads or fills it
    gets ``path``; small JSON pointers are read through ``read_json``."""

    lake: Any
    name: str

    @property
    def path(self) -> Path:
        return self.lake.table_path(self.name)

    def exists(self) -> bool:
        return self.path.exists()

    def read_json(self, relative: str) -> Any:
        """A JSON file of the artefact, or None when it is missing or unreadable."""
        target = self.path / relative
        try:
            return json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


@dataclass(frozen=True)
class Output:
    """A table for the runner to write.

    ``data``: an Arrow table, or an iterable of tables / record batches (streamed to the file, never held
    whole), or for ``partitions`` an iterable of ``(partition, table)``.
    ``mode``: ``overwrite`` (replace the table), ``append`` (add the rows), ``upsert`` (stored rows whose
    ``key`` values appear in ``data`` are replaced, the others kept), ``partitions`` (replace each partition
    given; with ``keep_partitions``, stored partitions not in it are removed).
    """

    data: Any
    mode: Mode = "overwrite"
    key: tuple[str, ...] = ()
    keep_partitions: Iterable[str] | None = None
    schema: Any = None  # for streamed data: the file's schema (default: the first batch's)


@dataclass(frozen=True)
class Artefact:
    """An artefact for the runner to write: ``build(folder)`` fills a fresh hidden folder (or, with
    ``file=True``, writes one file at the given path), which the runner then moves into place at
    ``<catalog entry>/<relative>`` in one rename. ``pointer``: JSON written atomically beside it afterwards
    (``latest.json``), with ``path`` filled in."""

    build: Callable[[Path], Any]
    relative: str = ""
    file: bool = False
    pointer: tuple[str, dict[str, Any]] | None = None


@dataclass
class StageResult:
    outputs: dict[str, Output | Artefact] = field(default_factory=dict)
    summary: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, Any] | None = None  # model quality: the manifest's scores.<stage>
    notes: dict[str, Any] = field(default_factory=dict)  # other manifest outputs (outputs.<key>)


def map_in_process(function: Callable[..., Any], items: Iterable[Mapping[str, Any]], *,
                   name: str = "partition") -> list[Any]:
    """``RunInfo.map`` without a task runner: one item after another, in this process."""
    return [function(**item) for item in items]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    windows_unit: str
    sections: Mapping[str, Any] = field(default_factory=dict)  # config sections named in Stage.uses
    manifest: Callable[[], dict[str, Any] | None] = lambda: None  # this run's manifest as written so far
    lake_root: Path | None = None  # for publishing stages whose core builders read the lake in place
    map: Callable[..., list[Any]] = map_in_process  # per-partition work: in process, or on Dask workers
    workers: int = 1  # how many items ``map`` runs at once: a stage splits its work into at least this many


class Inputs(Mapping[str, Any]):
    """The handles a stage may use: exactly the catalog names it declared."""

    def __init__(self, lake: Any, names: Iterable[str]) -> None:
        self._handles: dict[str, Any] = {}
        for name in names:
            kind = catalog.entry(name).kind
            self._handles[name] = TableInput(lake, name) if kind == "table" else ArtefactInput(lake, name)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._handles[name]
        except KeyError:
            raise KeyError(f"{name!r} is not among the stage's declared inputs and outputs "
                           f"({', '.join(sorted(self._handles))}); declare it on the Stage") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._handles)

    def __len__(self) -> int:
        return len(self._handles)
