"""Compare two lakes table by table: is a refactor's output the same, row for row?

    .venv/bin/python scripts/compare_lakes.py OLD_LAKE NEW_LAKE [--ignore COL ...] [--rename OLD=NEW ...]

Each Parquet table present in either lake is read whole (hive partitions included), columns that name a run
(``run_id``, ``ingest_run``, timestamps of the run itself) are dropped, ``--rename`` maps old column names to
new ones, and the rows are compared as sorted multisets (floats rounded to 9 digits). Prints one line per
table and exits 1 if any table differs. Meant for lakes of the demo's size (tables are read into memory).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

# Columns that say which run wrote a row or when, not what the row says.
# posts_signature, docs_signature (docs_sources): a file's size, mtime and inode, which two lakes never share.
RUN_COLUMNS = {"run_id", "ingest_run", "first_run", "last_run", "at", "seconds", "retrieved_at", "posts_signature",
               "docs_signature"}
SKIP_FOLDERS = {"runs", "models", "cache", "_cache", "_state", "quarantine", "report.html", "summary.duckdb"}


def _tables(lake: Path) -> set[str]:
    return {p.name for p in lake.iterdir() if p.is_dir() and p.name not in SKIP_FOLDERS
            and not p.name.startswith((".", "_")) and any(p.rglob("*.parquet"))}


DIGITS = 9


def _freeze(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, DIGITS)
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _rows(folder: Path, ignore: set[str], renames: dict[str, str]) -> tuple[list[str], Counter]:
    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    table = table.rename_columns([renames.get(n, n) for n in table.column_names])
    keep = sorted(n for n in table.column_names if n not in ignore)
    columns = [table.column(n).to_pylist() for n in keep]
    return keep, Counter(tuple(_freeze(v) for v in row) for row in zip(*columns))


def compare(old: Path, new: Path, ignore: set[str], renames: dict[str, str], only: list[str] | None = None) -> bool:
    same = True
    for name in sorted(set(only) if only else _tables(old) | _tables(new)):
        if not (old / name).is_dir() or not (new / name).is_dir():
            print(f"{name}: only in {'old' if (old / name).is_dir() else 'new'} lake")
            same = False
            continue
        old_cols, old_rows = _rows(old / name, ignore, renames)
        new_cols, new_rows = _rows(new / name, ignore, renames)
        if old_cols != new_cols:
            only_old, only_new = sorted(set(old_cols) - set(new_cols)), sorted(set(new_cols) - set(old_cols))
            common = [c for c in old_cols if c in new_cols]
            print(f"{name}: columns differ (only old: {only_old}, only new: {only_new}); comparing {len(common)} common")
            old_rows = Counter(tuple(r[old_cols.index(c)] for c in common) for r in old_rows.elements())
            new_rows = Counter(tuple(r[new_cols.index(c)] for c in common) for r in new_rows.elements())
            same = False  # a column that is not mapped by --rename is a difference, whatever the rows say
        missing, extra = old_rows - new_rows, new_rows - old_rows
        status = "identical" if not missing and not extra else "DIFFERENT"
        same &= status == "identical"
        print(f"{name}: {status}: {sum(old_rows.values())} rows old, {sum(new_rows.values())} new"
              + (f"; {sum(missing.values())} old rows not in new, {sum(extra.values())} new rows not in old"
                 if status != "identical" else ""))
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--ignore", nargs="*", default=[], help="more columns to leave out")
    parser.add_argument("--rename", nargs="*", default=[], help="OLD=NEW column renames between the lakes")
    parser.add_argument("--digits", type=int, default=DIGITS, help="decimals floats are compared at (default 9)")
    parser.add_argument("--tables", nargs="*", help="only these tables")
    args = parser.parse_args()
    globals()["DIGITS"] = args.digits
    renames = dict(pair.split("=", 1) for pair in args.rename)
    sys.exit(0 if compare(args.old, args.new, RUN_COLUMNS | set(args.ignore), renames, args.tables) else 1)


if __name__ == "__main__":
    main()
