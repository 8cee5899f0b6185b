"""Lake tables for tests, built from the catalog's schemas (``edumine/catalog.py`` -> ``edumine/tables.py``), so a
fixture has exactly the columns and types the stages write and cannot drift from them.

``make_table(name, rows)`` checks ``rows`` (a list of dicts, a dict of columns or a DataFrame) against the
catalog's schema of ``name``: a column the catalog does not declare is refused, a value of the wrong type
fails, a declared column the rows leave out is filled with its declared default (field metadata
``default``, JSON) or null; a non-nullable column without a default must be given. ``write_table`` writes
the result where the stage would (hive folders for a partitioned table), atomically like the lake.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa


class FixtureColumnError(ValueError):
    """A fixture that does not match the catalog's schema of its table."""


def catalog_schema(name: str) -> pa.Schema:
    """The table's columns as the lake holds them: its declared schema plus its partition columns."""
    from edumine.catalog import entry

    item = entry(name)
    schema = item.resolved_schema()
    if schema is None:
        raise FixtureColumnError(f"lake table {name!r} has no schema in edumine/catalog.py: declare one "
                                 "(edumine/tables.py) before building fixtures for it")
    extra = [pa.field(p, pa.string()) for p in item.partitioning if p not in schema.names]
    return pa.schema(list(schema) + extra)


def _columns(rows: Any) -> dict[str, list[Any]]:
    if isinstance(rows, pd.DataFrame):
        return {str(c): rows[c].tolist() for c in rows.columns}
    if isinstance(rows, dict):
        return {str(k): list(v) for k, v in rows.items()}
    rows = list(rows)
    names = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in names}


def build(name: str, schema: pa.Schema, rows: Any) -> pa.Table:
    """``rows`` as a table of ``schema`` (see the module doc); ``name`` is for the messages."""
    columns = _columns(rows)
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise FixtureColumnError(f"fixture for {name!r} has column(s) {unknown} that the catalog does not declare; "
                                 f"its columns are {schema.names}")
    length = max((len(v) for v in columns.values()), default=0)
    arrays = []
    for field in schema:
        if field.name in columns:
            values = columns[field.name]
        elif field.metadata and b"default" in field.metadata:
            values = [json.loads(field.metadata[b"default"])] * length
        elif field.nullable:
            values = [None] * length
        else:
            raise FixtureColumnError(f"fixture for {name!r} lacks column {field.name!r}, which is not nullable "
                                     "and has no declared default")
        try:
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise FixtureColumnError(f"fixture for {name!r}: column {field.name!r} does not fit {field.type}: "
                                     f"{exc}") from None
    return pa.Table.from_arrays(arrays, schema=schema)


def make_table(name: str, rows: Any) -> pa.Table:
    return build(name, catalog_schema(name), rows)


def write_table(lake: Path, name: str, rows: Any) -> pa.Table:
    """Build ``name`` from ``rows`` and replace the lake's table with it; returns the table."""
    from edumine.catalog import entry
    from edumine.lake import PART_FILE, write_parquet_atomic

    table = make_table(name, rows)
    folder = Path(lake) / entry(name).name
    partitioning = entry(name).partitioning
    for old in folder.rglob("*.parquet") if folder.is_dir() else []:
        old.unlink()
    if not partitioning:
        write_parquet_atomic(table, folder / PART_FILE)
        return table
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, key in enumerate(zip(*(table.column(p).to_pylist() for p in partitioning))):
        groups[key].append(index)
    body = table.drop_columns(list(partitioning))
    for key, indices in groups.items():
        part = folder.joinpath(*(f"{p}={v}" for p, v in zip(partitioning, key)))
        write_parquet_atomic(body.take(indices), part / PART_FILE)
    return table
