"""Lake migrations: bring tables written by an older edumine to the current column names.

Each migration is idempotent and checks file footers only, so it is cheap to run at the start of every run
(``open_run``) and by hand (``edumine migrate --lake DIR``). Files are rewritten atomically.

- ``window-label`` (2026-12): the window label column was ``window``, a SQL reserved word analysts trip on;
  it is ``window_label`` in every table now, beside ``window_start``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq

from edumine.lake import write_parquet_atomic

log = logging.getLogger(__name__)

RENAMED_COLUMNS = {"window": "window_label"}
WINDOW_TABLES = ("doc_topics", "topic_prevalence", "topic_windows", "topic_events", "theme_prevalence")


def _rename_columns(path: Path, renames: dict[str, str]) -> bool:
    names = pq.read_schema(path).names
    todo = {old: new for old, new in renames.items() if old in names and new not in names}
    if not todo:
        return False
    table = pq.read_table(path)
    write_parquet_atomic(table.rename_columns([todo.get(name, name) for name in table.column_names]), path)
    return True


def migrate_lake(root: str | Path) -> list[str]:
    """Apply every migration to the lake at ``root``; returns the files rewritten (relative paths)."""
    root = Path(root)
    changed = []
    for table in WINDOW_TABLES:
        folder = root / table
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.parquet")):
            if path.name.startswith(".") or not _rename_columns(path, RENAMED_COLUMNS):
                continue
            changed.append(str(path.relative_to(root)))
    if changed:
        log.info("migrated %d lake file(s): column `window` is now `window_label`", len(changed))
    return changed
