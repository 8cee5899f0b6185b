"""Atomic writes the lake's writers share: one Parquet file, a stream of Arrow pieces to one Parquet file,
directory fsync, removing a partition, and the key match of an upsert (``Lake.write``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def write_parquet_atomic(table: pa.Table, path: Path, *, durable: bool = True) -> None:
    """Write ``table`` to ``path`` so that readers see the old file or the whole new one, never a part.

    ``durable=False`` skips the fsyncs and uses cheaper compression, for files a crash makes worthless.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        pq.write_table(table, tmp, compression="zstd" if durable else "lz4", write_page_checksum=durable)
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)


def remove_partition(target: Path) -> None:
    """Remove a partition's file and the folders it leaves empty (a partition whose last row moved away)."""
    target.unlink(missing_ok=True)
    folder = target.parent
    for _ in range(3):
        try:
            folder.rmdir()
        except OSError:
            break
        folder = folder.parent


def write_stream_atomic(tables: Any, path: Path, *, schema: Any = None) -> None:
    """Write an iterable of tables or record batches to ``path`` as one Parquet file, atomically, holding one
    piece in memory at a time. An empty stream writes an empty table of ``schema`` (nothing without one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    writer = None
    try:
        for piece in tables:
            if writer is None:
                writer = pq.ParquetWriter(tmp, schema if schema is not None else piece.schema, compression="zstd",
                                         write_page_checksum=True)  # verified on read (edumine/integrity.py)
            writer.write_table(piece if isinstance(piece, pa.Table) else pa.Table.from_batches([piece]))
        if writer is None:
            if schema is None:
                return
            writer = pq.ParquetWriter(tmp, schema, compression="zstd", write_page_checksum=True)
        writer.close()
        writer = None
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _key_in(stored: pa.Table, new: pa.Table, key: tuple[str, ...]) -> Any:
    """Rows of ``stored`` whose ``key`` values appear in ``new``."""
    if len(key) == 1:
        return pc.is_in(stored[key[0]], value_set=pc.unique(new[key[0]]))
    wanted = set(zip(*(new[k].to_pylist() for k in key)))
    return pa.array([row in wanted for row in zip(*(stored[k].to_pylist() for k in key))], pa.bool_())
