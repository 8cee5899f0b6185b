"""The Parquet lake: the only place stages read from and write to.

``<lake>/posts/platform=<p>/community=<c>/month=YYYY-MM/part-0.parquet`` holds exactly one file per
partition. Collection (``PostsWriter``, edumine/lake_writers.py) stages new records on disk in bounded chunks
(``_staging/<run_id>/``), then merges each touched partition with what is stored and replaces the partition's
file atomically (write a hidden temporary file, fsync, ``os.replace``). So a run killed at any moment leaves every partition either as it
was or fully merged, and a rerun converges to the same rows as a clean run. Merging keeps one row per
``uid``: the newest retrieval wins, ties keep the stored row (a second identical run adds 0 rows and
rewrites nothing), and deletion is sticky: once any retrieval says a record was deleted, no text is kept.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from edumine import catalog
from edumine.errors import LakeBusyError
from edumine.atomic import (_key_in, fsync_dir, remove_partition, write_parquet_atomic,  # noqa: F401
                            write_stream_atomic)
from edumine.lake_writers import PART_FILE, PartitionKey, PostsWriter, QuarantineWriter, partition_dir  # noqa: F401
from edumine.merge import MergeCounts  # noqa: F401
from edumine.schema import FILE_SCHEMA, PARTITION_FIELDS, POSTS_SCHEMA

log = logging.getLogger(__name__)
# Reads verify the page checksums every durable file carries (edumine/integrity.py): a garbled page is an
# error naming the file, never silently different values.
_VERIFY = {"fragment_scan_options": ds.ParquetFragmentScanOptions(page_checksum_verification=True)}


class Lake:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock_handle: Any = None

    posts = property(lambda self: self.root / "posts")
    quarantine = property(lambda self: self.root / "quarantine")
    runs = property(lambda self: self.root / "runs")
    staging = property(lambda self: self.root / "_staging")

    def table_path(self, name: str) -> Path:
        """The folder of a table or artefact the catalog declares (``edumine/catalog.py``)."""
        return self.root / catalog.entry(name).name

    def exists(self, name: str) -> bool:
        return any(f for f in self.table_path(name).rglob("*.parquet") if not f.name.startswith("."))

    def dataset(self, name: str) -> ds.Dataset | None:
        """A catalog table as a pyarrow dataset (partition columns as strings); None when never written."""
        if name == "posts":
            return self.posts_dataset()
        item = catalog.entry(name)
        if not self.exists(name):
            return None
        partitioning = ds.partitioning(pa.schema([pa.field(p, pa.string()) for p in item.partitioning]),
                                       flavor="hive") if item.partitioning else None
        try:
            return ds.dataset(self.table_path(name), format="parquet", partitioning=partitioning)
        except (OSError, pa.ArrowException) as exc:  # a file whose footer cannot be read
            raise self._damage(name, exc) from None

    def read(self, name: str, columns: list[str] | None = None, filter: Any = None, *,
             missing_ok: bool = False) -> pa.Table | None:
        """A catalog table (all its files); ``None`` when it was never written and ``missing_ok``."""
        if name == "posts":
            return self.read_posts(columns=columns, filter=filter)
        dataset = self.dataset(name)
        if dataset is None:
            if missing_ok:
                return None
            raise FileNotFoundError(f"lake table {name!r} is missing from {self.root}: the "
                                    f"{catalog.entry(name).owner} stage writes it; run the pipeline (edumine run) "
                                    "to build it")
        if columns is not None:
            columns = [c for c in columns if c in dataset.schema.names]
        try:
            return dataset.to_table(columns=columns, filter=filter, **_VERIFY)
        except (OSError, pa.ArrowException) as exc:
            raise self._damage(name, exc) from None

    def partitions(self, name: str) -> list[str]:
        """The partitions of a partitioned table that hold a file (``platform=x/community=y/month=z``)."""
        item = catalog.entry(name)
        folder = self.table_path(name)
        pattern = "/".join("*" for _ in item.partitioning) + f"/{PART_FILE}"
        return sorted(str(f.parent.relative_to(folder)) for f in folder.glob(pattern)) if folder.is_dir() else []

    def partition_signature(self, name: str, partition: str) -> str | None:
        """``size:mtime_ns:inode`` of a partition's file (None when missing): every write replaces the file
        (a new inode), so an equal signature means the partition was not written since."""
        try:
            stat = (self.table_path(name) / partition / PART_FILE).stat()
        except FileNotFoundError:
            return None
        return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"

    def read_partition(self, name: str, partition: str, columns: list[str] | None = None,
                       schema: Any = None) -> pa.Table | None:
        """One partition's file; None when it is missing. One that cannot be read raises ``CorruptTable``
        (edumine/integrity.py): the runner removes a derived one and its stage rebuilds it, noted in the
        manifest; a posts file is a clear error."""
        from edumine.integrity import CorruptTable

        target = self.table_path(name) / partition / PART_FILE
        if not target.exists():
            return None
        try:
            return pq.read_table(target, columns=columns, schema=schema, page_checksum_verification=True)
        except Exception as exc:  # noqa: BLE001  (pyarrow raises several kinds for a damaged file)
            raise CorruptTable(name, target, f"{type(exc).__name__}: {exc}") from None

    # -- writing (the runner's, for stages; collection has PostsWriter) ----------------------------
    def write(self, name: str, table: Any, *, mode: str = "overwrite", key: tuple[str, ...] = (),
              schema: Any = None, part: str = PART_FILE) -> Path:
        """Write a catalog table atomically (readers see the old file or the whole new one).

        ``overwrite``: replace it (``table`` may be an iterable of tables or record batches, streamed);
        ``append``: add the rows to what is stored; ``upsert``: stored rows whose ``key`` values appear in
        ``table`` are replaced, the others kept (stored first, then the new rows)."""
        target = self.table_path(name) / part
        if isinstance(table, (pa.Table, pa.RecordBatch)):
            table = self._conform(name, pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch)
                                  else table)
            if mode in ("append", "upsert"):
                stored = self.read(name, missing_ok=True)
                if stored is not None and stored.num_rows:
                    if mode == "upsert" and key:
                        stored = stored.filter(pc.invert(_key_in(stored, table, key)))
                    table = pa.concat_tables([stored, table], promote_options="permissive")
            elif mode != "overwrite":
                raise ValueError(f"unknown write mode {mode!r} for table {name!r}")
            write_parquet_atomic(table, target)
        elif mode == "overwrite":
            write_stream_atomic((self._conform(name, t) for t in table), target, schema=schema)
        else:
            raise ValueError(f"mode {mode!r} takes a table, not a stream (table {name!r})")
        for other in self.table_path(name).glob("*.parquet"):  # one file per unpartitioned table
            if other != target and not other.name.startswith("."):
                other.unlink()
        return target

    def _conform(self, name: str, table: Any) -> Any:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        schema = catalog.entry(name).resolved_schema()
        if schema is not None and table.schema != schema:
            missing = sorted(set(schema.names) - set(table.column_names))
            if missing:
                raise ValueError(f"table {name!r} lacks the catalog's columns {missing}")
            table = table.select(schema.names).cast(schema)
        return table

    def write_partition(self, name: str, partition: str, table: pa.Table) -> Path:
        """Replace one partition's file of a partitioned table atomically."""
        target = self.table_path(name) / partition / PART_FILE
        write_parquet_atomic(self._conform(name, table), target)
        return target

    def drop_partition(self, name: str, partition: str) -> None:
        """Remove a partition of a partitioned table (and the folders it leaves empty)."""
        remove_partition(self.table_path(name) / partition / PART_FILE)

    def write_artefact(self, name: str, relative: str, build: Any, *, file: bool = False) -> tuple[Path, Any]:
        """Let ``build(path)`` fill a hidden temporary folder (or file) in the artefact ``name``, then move it
        to ``<name>/<relative>`` in one rename; returns the final path and what ``build`` returned."""
        final = self.table_path(name) / relative if relative else self.table_path(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{uuid.uuid4().hex}-{final.name}"
        try:
            result = build(tmp)
            if not file and tmp.is_dir():  # checked before the folder is used again (edumine/integrity.py)
                from edumine.integrity import seal

                seal(tmp)
            if file:
                with open(tmp, "rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(tmp, final)
            else:
                tmp.mkdir(parents=True, exist_ok=True)
                old = final.parent / f".tmp-old-{uuid.uuid4().hex}"
                if final.exists():
                    os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        fsync_dir(final.parent)
        return final, result

    # -- locking ---------------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the lake's single-writer lock (released by ``unlock`` or when the process dies)."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".lock", "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise LakeBusyError(f"another edumine run (pid {holder}) is writing to the lake {self.root}; "
                                "wait for it to finish, or point `lake:` at another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle
        self._clean_leftovers()

    def unlock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def _clean_leftovers(self) -> None:
        """Remove what killed runs left behind: staging folders and half-written temporary files."""
        shutil.rmtree(self.staging, ignore_errors=True)
        for tmp in sorted(self.root.glob("**/.tmp-*"), key=lambda p: -len(p.parts)):
            if tmp.is_dir():  # an artefact folder a killed run was building
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------------
    def posts_dataset(self) -> ds.Dataset | None:
        if not any(self.posts.glob(f"*/*/*/{PART_FILE}")):
            return None
        partitioning = ds.partitioning(pa.schema(PARTITION_FIELDS), flavor="hive")
        # The full schema, so that files written before a column existed read it as null.
        return ds.dataset(self.posts, format="parquet", partitioning=partitioning, schema=POSTS_SCHEMA)

    def read_posts(self, columns: list[str] | None = None, filter: Any = None) -> pa.Table:
        dataset = self.posts_dataset()
        if dataset is None:
            return pa.schema(FILE_SCHEMA).empty_table() if columns is None else \
                pa.schema([f for f in FILE_SCHEMA if f.name in columns]).empty_table()
        try:
            return dataset.to_table(columns=columns, filter=filter, **_VERIFY)
        except (OSError, pa.ArrowException) as exc:
            raise self._damage("posts", exc) from None

    def _damage(self, name: str, exc: BaseException) -> Exception:
        """The ``CorruptTable`` naming the file that made reading ``name`` fail; the error itself when every
        file reads in full (a caller's mistake, such as a column the table does not have)."""
        from edumine.integrity import find_damage

        return find_damage(self.root, name) or exc

    def count_posts(self) -> int:
        dataset = self.posts_dataset()
        return 0 if dataset is None else dataset.count_rows()


