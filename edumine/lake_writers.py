"""Collection's writers: ``PostsWriter`` stages new records and merges them into the lake's posts (one row per uid,
each touched partition replaced atomically); ``QuarantineWriter`` keeps what could not be read, with the reason.

Staging is scratch space that a crash makes worthless (the next run's lock removes ``_staging``), so it is written
for speed: each chunk of ``chunk_rows`` records is sorted by partition once and written as one uncompressed Arrow
IPC file, one record batch per partition slice, and read back memory-mapped, so a merge reads only the slices
(and, for the move plan, only the columns) it needs without decoding anything. The last, partial chunk is never
written: it is merged from memory. Durability is the lake files' (``write_parquet_atomic``: zstd, page checksums,
fsync of the file and its folder before the next step).
"""

from __future__ import annotations

import shutil
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from edumine.atomic import remove_partition, write_parquet_atomic
from edumine.faults import kill_point
from edumine.merge import MergeCounts, merge_versions, plan_moves, stored_elsewhere
from edumine.schema import FILE_SCHEMA, QUARANTINE_SCHEMA, UTC

PART_FILE = "part-0.parquet"
PartitionKey = tuple[str, str, str]  # platform, community, month


def partition_dir(root: Path, key: PartitionKey) -> Path:
    platform, community, month = key
    return root / f"platform={platform}" / f"community={community}" / f"month={month}"


def split_by_partition(table: pa.Table) -> list[tuple[PartitionKey, pa.Table]]:
    """``table``'s rows (FILE_SCHEMA's columns) by partition, in partition order; rows of one partition keep their
    order. One sort of the three partition columns and one take of the table."""
    if not table.num_rows:
        return []
    keys = pa.table({"p": table["platform"], "c": table["community"], "m": table["month"],
                     "i": pa.array(np.arange(table.num_rows))})
    order = pc.sort_indices(keys, sort_keys=[("p", "ascending"), ("c", "ascending"), ("m", "ascending"),
                                             ("i", "ascending")])
    table = table.combine_chunks().take(order)  # a take over many chunks costs several times more
    codes = [table[name].combine_chunks().dictionary_encode() for name in ("platform", "community", "month")]
    indices = [code.indices.to_numpy() for code in codes]
    change = np.zeros(table.num_rows, dtype=bool)
    change[0] = True
    for values in indices:
        change[1:] |= values[1:] != values[:-1]
    starts = np.flatnonzero(change).tolist() + [table.num_rows]
    files = table.select(FILE_SCHEMA.names)
    if files.schema != FILE_SCHEMA:
        files = files.cast(FILE_SCHEMA)
    return [(tuple(code.dictionary[int(values[start])].as_py() for code, values in zip(codes, indices)),
             files.slice(start, end - start)) for start, end in zip(starts[:-1], starts[1:])]


class PostsWriter:
    """Buffers records, stages them in bounded chunks, and merges them into the lake on ``commit``."""

    def __init__(self, lake: Any, run_id: str, *, chunk_rows: int = 50_000) -> None:
        self.lake = lake
        self.chunk_rows = chunk_rows
        self.stage_root = lake.staging / run_id / uuid.uuid4().hex[:8]
        self._buffers: dict[PartitionKey, list[dict]] = defaultdict(list)
        self._buffered = 0
        self._chunks = 0
        self._tables: list[pa.Table] = []  # batches given by add_table, not yet staged
        # Where each partition's staged rows are: (chunk file number, record batch number), in order.
        self._staged: dict[PartitionKey, list[tuple[int, int]]] = defaultdict(list)
        self._held: dict[PartitionKey, list[pa.Table]] = defaultdict(list)  # the last chunk, kept in memory

    def add(self, record: dict, key: PartitionKey) -> None:
        self._buffers[key].append(record)
        self._buffered += 1
        if self._buffered >= self.chunk_rows:
            self._stage(self._pending())

    def add_table(self, table: pa.Table) -> None:
        """Records already as a table: FILE_SCHEMA's columns and the partition columns (platform, community,
        month). Rows of one partition keep their order, as with ``add``."""
        self._tables.append(table)
        self._buffered += table.num_rows
        if self._buffered >= self.chunk_rows:
            self._stage(self._pending())

    def _pending(self) -> list[tuple[PartitionKey, pa.Table]]:
        """What was added since the last chunk, by partition (and forget it)."""
        pieces = split_by_partition(pa.concat_tables(self._tables)) if self._tables else []
        pieces += [(key, pa.Table.from_pylist(rows, schema=FILE_SCHEMA)) for key, rows in self._buffers.items()]
        self._tables.clear()
        self._buffers.clear()
        self._buffered = 0
        return pieces

    def _chunk_path(self, number: int) -> Path:
        return self.stage_root / f"chunk-{number:05d}.arrow"

    def _stage(self, pieces: list[tuple[PartitionKey, pa.Table]]) -> None:
        if not pieces:
            return
        self.stage_root.mkdir(parents=True, exist_ok=True)
        batch_number = 0
        with pa.OSFile(str(self._chunk_path(self._chunks)), "wb") as sink, \
                pa.ipc.new_file(sink, FILE_SCHEMA) as stream:
            for key, piece in pieces:
                for batch in piece.to_batches():
                    stream.write_batch(batch)
                    self._staged[key].append((self._chunks, batch_number))
                    batch_number += 1
                kill_point("collect.staging")
        self._chunks += 1

    def _incoming(self, key: PartitionKey, columns: list[str] | None = None) -> pa.Table:
        """A partition's new rows in the order they were added: its staged slices (memory-mapped, only
        ``columns``), then the held ones."""
        batches: list[pa.RecordBatch] = []
        by_chunk: dict[int, list[int]] = defaultdict(list)
        for chunk, number in self._staged.get(key, ()):
            by_chunk[chunk].append(number)
        for chunk, numbers in sorted(by_chunk.items()):
            reader = pa.ipc.open_file(pa.memory_map(str(self._chunk_path(chunk))))
            batches += [reader.get_batch(n) if columns is None else reader.get_batch(n).select(columns)
                        for n in numbers]
        schema = FILE_SCHEMA if columns is None else pa.schema([FILE_SCHEMA.field(c) for c in columns])
        table = pa.Table.from_batches(batches, schema=schema)
        held = [t if columns is None else t.select(columns) for t in self._held.get(key, ())]
        return pa.concat_tables([table, *held]) if held else table

    def commit(self) -> MergeCounts:
        """Merge every touched partition into the lake; returns what changed.

        One row per uid across the whole lake: a uid whose versions (stored or incoming) sit in more than one
        partition (a later retrieval says another month or community) is merged in the partition of its
        winning version and leaves the others. Partitions that gain rows are written before those that lose
        them, so a kill in between leaves a duplicate that the next merge of the uid resolves, never a loss.
        """
        total = MergeCounts()
        for key, piece in self._pending():
            self._held[key].append(piece)
        keys = sorted(set(self._staged) | set(self._held))
        moves = plan_moves(self.lake, self._incoming, keys)
        routed: dict[PartitionKey, list[pa.Table]] = defaultdict(list)  # versions merged in another partition
        leaving: dict[PartitionKey, set[str]] = defaultdict(set)
        if moves:
            for key in keys:
                table = self._incoming(key)
                away = [(uid, k) for uid, k in moves.items() if k != key]
                for dest in {k for _, k in away}:
                    uids = [uid for uid, k in away if k == dest]
                    picked = table.filter(pc.is_in(table["uid"], value_set=pa.array(uids, pa.string())))
                    if picked.num_rows:
                        routed[dest].append(picked)
            for key, rows in stored_elsewhere(self.lake, moves).items():
                for dest in {moves[u] for u in rows["uid"].to_pylist()} - {key}:
                    uids = [u for u in rows["uid"].to_pylist() if moves[u] == dest]
                    routed[dest].append(rows.filter(pc.is_in(rows["uid"], value_set=pa.array(uids, pa.string()))))
                    leaving[key].update(uids)
        for key in sorted(set(keys) | set(routed)):
            incoming = self._incoming(key) if key in keys else None
            if incoming is not None and moves:
                stay = [uid for uid, k in moves.items() if k != key]
                incoming = incoming.filter(pc.invert(pc.is_in(incoming["uid"], value_set=pa.array(stay, pa.string()))))
            target = partition_dir(self.lake.posts, key) / PART_FILE
            existing = pq.read_table(target, schema=FILE_SCHEMA) if target.exists() else None
            moved_in = [t for t in routed.get(key, []) if t.num_rows]
            moved_stored = [t for t in moved_in if "_stored" in t.schema.names]
            moved_new = [t for t in moved_in if "_stored" not in t.schema.names]
            if moved_stored:
                existing = pa.concat_tables(([existing] if existing is not None else []) +
                                            [t.drop_columns(["_stored"]) for t in moved_stored])
            parts = ([incoming] if incoming is not None else []) + moved_new
            if not parts:
                continue
            merged, counts = merge_versions(existing, pa.concat_tables(parts))
            if counts.partitions_rewritten or moved_stored:
                write_parquet_atomic(merged, target)
                counts.partitions_rewritten = 1
            total += counts
            kill_point("merge")
        for key, uids in sorted(leaving.items()):
            target = partition_dir(self.lake.posts, key) / PART_FILE
            table = pq.read_table(target, schema=FILE_SCHEMA)
            kept = table.filter(pc.invert(pc.is_in(table["uid"], value_set=pa.array(sorted(uids), pa.string()))))
            if kept.num_rows:
                write_parquet_atomic(kept, target)
            else:
                remove_partition(target)
            total.partitions_rewritten += 1
        self._discard_staging()
        return total

    def _discard_staging(self) -> None:
        shutil.rmtree(self.stage_root, ignore_errors=True)
        for parent in (self.stage_root.parent, self.lake.staging):
            try:
                parent.rmdir()
            except OSError:
                pass  # not empty: another source of this run is still staging
        self._staged.clear()
        self._held.clear()


@dataclass
class QuarantineWriter:
    """Collects records that could not be read, with the reason, for ``<lake>/quarantine/<run_id>/``."""

    lake: Any
    run_id: str
    source: str
    rows: list[dict] = field(default_factory=list)
    by_reason: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _parts: int = 0

    def add(self, location: str, reason: str, detail: str, excerpt: str) -> None:
        self.by_reason[reason] += 1
        self.rows.append({"run_id": self.run_id, "source": self.source, "location": location,
                          "reason": reason, "detail": detail[:500], "excerpt": excerpt,
                          "quarantined_at": datetime.now(UTC)})
        if len(self.rows) >= 20_000:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        name = f"{_safe_name(self.source)}-{self._parts:04d}.parquet"
        write_parquet_atomic(pa.Table.from_pylist(self.rows, schema=QUARANTINE_SCHEMA),
                             self.lake.quarantine / self.run_id / name)
        self._parts += 1
        self.rows.clear()


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
