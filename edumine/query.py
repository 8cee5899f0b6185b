"""Read-only SQL over the lake (Parquet views) and the summary store (DuckDB), for analysts.

Every folder of Parquet files under the lake becomes a view of the same name (``posts``, ``docs``,
``doc_topics``, ``quarantine``, ...); the tables of ``summary.duckdb`` are attached read-only and shown
as views too. Only reading statements run: anything that writes (INSERT, CREATE, COPY, ATTACH, SET, ...)
is refused before it reaches the database.

The connection is sandboxed by DuckDB itself, not by parsing the SQL: once the views are made, external access
is switched off except for the lake's table folders and the summary store (``allowed_directories`` /
``allowed_paths``), and the configuration is locked. ``read_text``, ``read_csv``, ``glob`` and friends
therefore cannot reach the pseudonym key, another lake, the run manifests or any other file of the machine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edumine.errors import QueryError

SKIP_DIRS = {"runs", "_staging"}
READING = {"SELECT", "EXPLAIN"}
HIVE_TYPES = "{'platform': VARCHAR, 'community': VARCHAR, 'month': VARCHAR}"
_EXPLAINED = re.compile(r"^\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?",
                        re.IGNORECASE | re.DOTALL)


def _sql_string(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def lake_tables(root: Path) -> dict[str, Path]:
    """Folders under the lake that hold Parquet files, by view name."""
    tables = {}
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name not in SKIP_DIRS and not child.name.startswith((".", "_")) \
                    and next(child.rglob("*.parquet"), None) is not None:
                tables[child.name] = child
    return tables


def connect(lake: str | Path) -> Any:
    """A DuckDB connection with the lake's views; nothing in it can write to the lake."""
    import duckdb

    root = Path(lake)
    if not root.is_dir():
        raise QueryError(f"no lake at {root}: run `edumine collect --config FILE` first, or pass --lake DIR")
    con = duckdb.connect(":memory:")
    tables = lake_tables(root)
    for name, folder in tables.items():
        pattern = _sql_string(folder / "**" / "*.parquet")
        hive = f", hive_types={HIVE_TYPES}" if name == "posts" else ""
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({pattern}, hive_partitioning=true, '
                    f"union_by_name=true{hive})")
    summary = root / "summary.duckdb"
    if summary.is_file():
        con.execute(f"ATTACH {_sql_string(summary)} AS summary (READ_ONLY)")
        existing = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'summary'").fetchall():
            if table not in existing:
                con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM summary.main."{table}"')
    _sandbox(con, tables, summary)
    return con


def _sandbox(con: Any, tables: dict[str, Path], summary: Path) -> None:
    """Let the connection read only the lake's tables and summary store, for good (see the module doc)."""
    folders = [str(folder.resolve()) + "/" for folder in tables.values()]
    paths = [str(summary.resolve())] if summary.is_file() else []
    con.execute(f"SET allowed_directories = {_sql_list(folders)}")
    con.execute(f"SET allowed_paths = {_sql_list(paths)}")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(_sql_string(v) for v in values) + "]"


def check_read_only(con: Any, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except Exception as exc:  # noqa: BLE001  (duckdb raises its own parser errors)
        raise QueryError(f"cannot parse the SQL: {exc}") from None
    if not statements:
        raise QueryError("no SQL statement given")
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs the statement it explains: check that one too
            inner = _EXPLAINED.sub("", statement.query, count=1)
            if inner == statement.query or not inner.strip():
                raise QueryError("refused: cannot tell which statement this EXPLAIN explains; "
                                 "write EXPLAIN [ANALYZE] SELECT ...")
            check_read_only(con, inner)
            continue
        if kind not in READING:
            raise QueryError(f"refused: `edumine query` only reads, and this is a {kind} statement. "
                             "Outputs are rebuilt by `edumine run`; to keep a result, use --format csv > file.csv")


def _damage_in(root: Path, sql: str) -> Any:
    """After a failed query: the first damaged file of a lake table the SQL names (edumine/integrity.py), so that
    the error says which file and what to do instead of DuckDB's "Out of buffer"."""
    from edumine.integrity import find_damage

    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql.lower()))
    for name in lake_tables(root):
        if name.lower() in named:
            damage = find_damage(root, name)
            if damage is not None:
                return damage
    return None


def run_query(lake: str | Path, sql: str) -> tuple[list[str], list[tuple]]:
    con = connect(lake)
    try:
        check_read_only(con, sql)
        try:
            cursor = con.execute(sql)
        except Exception as exc:  # noqa: BLE001
            views = [row[0] for row in con.execute(
                "SELECT DISTINCT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
            available = f"views available: {', '.join(views) or 'none'}"
            if type(exc).__name__ == "PermissionException":
                raise QueryError("refused: `edumine query` reads the lake's tables and its summary store only, no "
                                 f"other file ({str(exc).splitlines()[0]}); query the views instead ({available})"
                                 ) from None
            damage = _damage_in(Path(lake), sql)
            if damage is not None:
                raise QueryError(str(damage)) from None
            raise QueryError(f"{exc}\n({available})") from None
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()
    finally:
        con.close()
