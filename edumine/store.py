"""The summary store: ``<lake>/summary.duckdb``, what analysts query every morning.

Each run writes it into a hidden temporary file beside it and swaps it in with ``os.replace``,
so a reader (``edumine query``, a notebook, a BI tool) sees yesterday's store or today's, never half of
one. Tables copy the lake's small summary tables (those that exist: stages that did not run leave theirs
out, and ``store_contents`` says what is there); views read the lake's large Parquet tables in place.
A run updates the last store rather than rebuilding it: it starts from a copy of it and replaces only the
tables whose lake files changed since (``store_contents.source_signature``: a hash of the table's Parquet
file names, sizes and modification times), keeping the others as they are; views and ``runs`` are always
rewritten (they are cheap). The result equals a rebuild (``tests/test_nightly.py``).
Optionally the same tables go into PostgreSQL, in one transaction, for teams that share a server.
Schema, column by column: ``docs/store.md``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from edumine.errors import EdumineError
from edumine.faults import kill_point
from edumine.progress import Progress
from edumine.schema import UTC

log = logging.getLogger(__name__)

STORE_FILE = "summary.duckdb"
# Lake tables copied into the store, in this order (the names of CONTRACT.md). Every one is declared in
# edumine/catalog.py with its schema, and the store holds exactly the catalog's columns.
SUMMARY_TABLES = ("community_activity", "topics", "topic_prevalence", "topic_events", "topic_lineage",
                  "theme_prevalence")
# Lake tables the store reads in place (too large to copy every run).
LAKE_VIEWS = ("posts", "docs", "doc_topics", "doc_themes")


class StoreError(EdumineError):
    """The summary store could not be built or copied."""

    code = "E-STORE"


def _sql_string(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _has_parquet(folder: Path) -> bool:
    return folder.is_dir() and next(folder.rglob("*.parquet"), None) is not None


def parquet_source(root: Path, name: str) -> str:
    """A DuckDB ``read_parquet`` expression over the lake folder ``name`` (its catalog partition columns, such
    as posts' ``platform`` / ``community`` / ``month``, read from the folder names as text)."""
    from edumine.catalog import entry

    partitioning = entry(name).partitioning
    hive = (", hive_types={" + ", ".join(f"'{p}': VARCHAR" for p in partitioning) + "}") if partitioning else ""
    pattern = _sql_string(Path(root).resolve() / name / "**" / "*.parquet")
    return f"read_parquet({pattern}, hive_partitioning=true, union_by_name=true{hive})"


def catalog_schema(name: str) -> Any:
    """The pyarrow schema of a lake table as the store holds it: the catalog's columns, then its partition
    columns (text)."""
    import pyarrow as pa

    from edumine.catalog import entry

    item = entry(name)
    schema = item.resolved_schema()
    if schema is None:
        raise StoreError(f"lake table {name!r} has no schema in edumine/catalog.py; the store holds declared "
                         "columns only: declare it there")
    return pa.schema(list(schema) + [pa.field(p, pa.string()) for p in item.partitioning if p not in schema.names])


def catalog_select(con: Any, root: Path, name: str) -> str:
    """``SELECT <the catalog's columns> FROM <the lake's files>``. A declared column that the files lack (an
    older edumine wrote them) is NULL of its declared type, with a warning; columns the catalog does not
    declare are left out."""
    schema = catalog_schema(name)
    source = parquet_source(root, name)
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    absent = [f.name for f in schema if f.name not in present]
    types: dict[str, str] = {}
    if absent:
        from edumine.catalog import entry

        log.warning("lake table %s lacks the column(s) %s that edumine/catalog.py declares (an older edumine wrote "
                    "it): the store holds them as NULL until the %s stage runs again", name, absent,
                    entry(name).owner)
        con.register("_declared", schema.empty_table())
        types = {row[0]: str(row[1]) for row in con.execute("DESCRIBE SELECT * FROM _declared").fetchall()}
        con.unregister("_declared")
    columns = ", ".join(_quote_ident(f.name) if f.name in present
                        else f"CAST(NULL AS {types[f.name]}) AS {_quote_ident(f.name)}" for f in schema)
    return f"SELECT {columns} FROM {source}"


def manifest_rows(root: Path) -> list[dict[str, Any]]:
    """One summary row per run manifest under ``<lake>/runs/`` (oldest first); unreadable ones are skipped."""
    from edumine.manifest import run_manifests

    return [manifest_row(manifest, path) for path, manifest in run_manifests(root)]


def manifest_row(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    """The ``runs`` row of one manifest."""
    totals = manifest.get("totals") or {}
    code = manifest.get("code_version") or {}
    config = manifest.get("config") or {}
    return {
        "run_id": manifest.get("run_id") or path.parent.name,
        "flow": manifest.get("flow"),
        "status": manifest.get("status"),
        "started_at": _timestamp(manifest.get("started_at")),
        "finished_at": _timestamp(manifest.get("finished_at")),
        "config_hash": manifest.get("config_hash"),
        "window_unit": (config.get("windows") or {}).get("unit"),
        "edumine_version": code.get("edumine"),
        "git_commit": code.get("git_commit"),
        "git_dirty": code.get("git_dirty"),
        "pseudonym_key_id": manifest.get("pseudonym_key_id"),
        "sources": len(manifest.get("inputs") or []),
        "records": totals.get("records"),
        "added": totals.get("added"),
        "updated": totals.get("updated"),
        "duplicates": totals.get("duplicates"),
        "filtered": totals.get("filtered"),
        "quarantined": totals.get("quarantined_total"),
        "posts_rows": (manifest.get("outputs") or {}).get("posts_rows"),
        "seconds": round(sum((manifest.get("timings") or {}).values()), 3),
        "stages": ",".join(k for k in (manifest.get("outputs") or {}) if k != "posts_rows") or None,
        "scores": json.dumps(manifest.get("scores") or {}, sort_keys=True, default=str),
        "timings": json.dumps(manifest.get("timings") or {}, sort_keys=True),
        "error": manifest.get("error"),
        "manifest_path": str(path.resolve()),
    }


RUNS_COLUMNS = {
    "run_id": "VARCHAR", "flow": "VARCHAR", "status": "VARCHAR", "started_at": "TIMESTAMPTZ",
    "finished_at": "TIMESTAMPTZ", "config_hash": "VARCHAR", "window_unit": "VARCHAR", "edumine_version": "VARCHAR",
    "git_commit": "VARCHAR", "git_dirty": "BOOLEAN", "pseudonym_key_id": "VARCHAR", "sources": "INTEGER",
    "records": "BIGINT", "added": "BIGINT", "updated": "BIGINT", "duplicates": "BIGINT", "filtered": "BIGINT",
    "quarantined": "BIGINT", "posts_rows": "BIGINT", "seconds": "DOUBLE", "stages": "VARCHAR",
    "scores": "VARCHAR", "timings": "VARCHAR", "error": "VARCHAR", "manifest_path": "VARCHAR",
}


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def source_signature(folder: Path) -> str:
    """A hash of a lake table's Parquet files (relative names, sizes, modification times): a table rewritten
    since has another one."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*.parquet")):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _previous_tables(con: Any) -> dict[str, tuple[str, int]]:
    """What the copied store holds: table name -> (source signature, rows); {} for a store without them."""
    try:
        rows = con.execute("SELECT name, source_signature, rows FROM store_contents WHERE kind = 'table'").fetchall()
    except Exception:  # noqa: BLE001  (a store written before signatures existed: every table is replaced)
        return {}
    existing = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables "
                                                "WHERE table_type = 'BASE TABLE'").fetchall()}
    return {name: (signature, count) for name, signature, count in rows if name in existing and signature}


def build_store(lake_root: str | Path, *, run_id: str | None = None, out: str | Path | None = None,
                update: bool = True) -> dict[str, Any]:
    """Write ``<lake>/summary.duckdb`` (or ``out``: the runner's temporary path, which it then moves into
    place) atomically; returns what it holds (tables with rows, views, missing) and which tables it replaced
    and kept. ``update``: start from the lake's current store and replace only the tables whose lake files
    changed (module docstring); False: build every table anew."""
    import shutil

    import duckdb

    root = Path(lake_root)
    target = Path(out) if out is not None else root / STORE_FILE
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{STORE_FILE}"
    contents: list[tuple[str, str, int | None, str, str | None]] = []
    replaced: list[str] = []
    kept: list[str] = []
    current = root / STORE_FILE
    try:
        if update and current.is_file():
            shutil.copyfile(current, tmp)
        try:
            con = duckdb.connect(str(tmp))
        except duckdb.Error as exc:  # a damaged store is rebuilt, not updated
            log.warning("the summary store %s cannot be opened (%s); building it anew", current, exc)
            tmp.unlink(missing_ok=True)
            con = duckdb.connect(str(tmp))
        try:
            con.execute("SET TimeZone = 'UTC'")
            previous = _previous_tables(con) if update else {}
            for (name,) in con.execute("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_type = 'VIEW'").fetchall():
                con.execute(f'DROP VIEW "{name}"')
            for name in ("runs", "store_contents"):
                con.execute(f'DROP TABLE IF EXISTS "{name}"')
            _create_runs(con, manifest_rows(root))
            contents.append(("runs", "table", con.execute("SELECT count(*) FROM runs").fetchone()[0],
                             str((root / "runs").resolve()), None))
            missing = []
            with Progress("store: summary tables", total=len(SUMMARY_TABLES), unit="tables", logger=log) as progress:
                for name in SUMMARY_TABLES:
                    if not _has_parquet(root / name):
                        con.execute(f'DROP TABLE IF EXISTS "{name}"')
                        missing.append(name)
                        progress.advance(1)
                        continue
                    signature = source_signature(root / name)
                    if previous.get(name, (None, 0))[0] == signature:
                        rows = previous[name][1]
                        kept.append(name)
                    else:
                        con.execute(f'DROP TABLE IF EXISTS "{name}"')
                        con.execute(f'CREATE TABLE "{name}" AS {catalog_select(con, root, name)}')
                        rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                        replaced.append(name)
                    contents.append((name, "table", rows, str((root / name).resolve()), signature))
                    progress.advance(1)
            for name in LAKE_VIEWS:
                if not _has_parquet(root / name):
                    missing.append(name)
                    continue
                con.execute(f'CREATE VIEW "{name}" AS {catalog_select(con, root, name)}')
                contents.append((name, "view", None, str((root / name).resolve()), None))
            built_at = datetime.now(UTC)
            con.execute("CREATE TABLE store_contents (name VARCHAR, kind VARCHAR, rows BIGINT, source VARCHAR, "
                        "built_at TIMESTAMPTZ, built_by_run VARCHAR, source_signature VARCHAR)")
            con.executemany("INSERT INTO store_contents VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [(*item[:4], built_at, run_id, item[4]) for item in contents])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        kill_point("store.write")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return {"path": str(target), "tables": {n: r for n, k, r, _, _ in contents if k == "table"},
            "views": [n for n, k, _, _, _ in contents if k == "view"], "missing": missing,
            "tables_replaced": replaced, "tables_kept": kept}


def _create_runs(con: Any, rows: list[dict[str, Any]]) -> None:
    columns = ", ".join(f'"{name}" {kind}' for name, kind in RUNS_COLUMNS.items())
    con.execute(f"CREATE TABLE runs ({columns})")
    if rows:
        marks = ", ".join("?" for _ in RUNS_COLUMNS)
        con.executemany(f"INSERT INTO runs VALUES ({marks})", [[row[c] for c in RUNS_COLUMNS] for row in rows])


def refresh_runs(lake_root: str | Path, manifest: dict[str, Any]) -> bool:
    """Replace the ``runs`` row of ``manifest``'s run in the store (the store stage ran while the run was still
    ``running``; the runner calls this once the final manifest is written). One transaction; False when
    the store is absent."""
    import duckdb

    root = Path(lake_root)
    target = root / STORE_FILE
    if not target.is_file():
        return False
    row = manifest_row(manifest, root / "runs" / str(manifest.get("run_id")) / "manifest.json")
    con = duckdb.connect(str(target))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM runs WHERE run_id = ?", [row["run_id"]])
        con.execute(f"INSERT INTO runs VALUES ({', '.join('?' for _ in RUNS_COLUMNS)})",
                    [row[c] for c in RUNS_COLUMNS])
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return True


# -- PostgreSQL copy -----------------------------------------------------------------------------------
_PG_TYPES = {
    "BOOLEAN": "boolean", "TINYINT": "smallint", "SMALLINT": "smallint", "INTEGER": "integer", "BIGINT": "bigint",
    "UTINYINT": "smallint", "USMALLINT": "integer", "UINTEGER": "bigint", "UBIGINT": "numeric", "HUGEINT": "numeric",
    "FLOAT": "real", "DOUBLE": "double precision", "VARCHAR": "text", "DATE": "date", "TIME": "time",
    "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamptz", "BLOB": "bytea", "UUID": "uuid",
    "INTERVAL": "interval", "TIMESTAMP_NS": "timestamp", "TIMESTAMP_MS": "timestamp", "TIMESTAMP_S": "timestamp",
}


def _pg_type(duck_type: str) -> str:
    if duck_type in _PG_TYPES:
        return _PG_TYPES[duck_type]
    if duck_type.startswith("DECIMAL"):
        return "numeric"
    return "jsonb"  # lists, structs, maps: kept whole as JSON


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_to_postgres(store_path: str | Path, url: str, schema: str = "edumine",
                     lock_timeout_s: int = 120, tables: list[str] | None = None) -> dict[str, int]:
    """Copy every table of the store (or those in ``tables``) into ``schema`` on the PostgreSQL server at ``url``.

    One transaction: the old tables are dropped and the new ones created and filled, so readers of the
    server see the previous copy until the commit. Views over the lake's Parquet are not copied (a server
    cannot read the lake's files); returns rows per table. Replacing a table waits for readers' open
    transactions on it, at most ``lock_timeout_s`` seconds, then fails saying so.
    """
    import duckdb
    import psycopg
    from psycopg.types.json import Jsonb

    copied: dict[str, int] = {}
    source = duckdb.connect(str(store_path), read_only=True)
    try:
        source.execute("SET TimeZone = 'UTC'")
        present = [row[0] for row in source.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1").fetchall()]
        tables = [t for t in present if tables is None or t in tables]
        try:
            connection = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL server for the store copy: {exc}. Check "
                             "store.postgres_url (or the variable named by store.postgres_url_env)") from None
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s)}s'")
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)}")
                for table in tables:
                    described = source.execute(f'DESCRIBE "{table}"').fetchall()
                    names = [row[0] for row in described]
                    types = [_pg_type(str(row[1])) for row in described]
                    qualified = f"{_quote_ident(schema)}.{_quote_ident(table)}"
                    cursor.execute(f"DROP TABLE IF EXISTS {qualified}")
                    cursor.execute(f"CREATE TABLE {qualified} ("
                                   + ", ".join(f"{_quote_ident(n)} {t}" for n, t in zip(names, types)) + ")")
                    json_columns = [i for i, t in enumerate(types) if t == "jsonb"]
                    result = source.execute(f'SELECT * FROM "{table}"')
                    count = 0
                    column_list = ", ".join(_quote_ident(n) for n in names)
                    with cursor.copy(f"COPY {qualified} ({column_list}) FROM STDIN") as copy:
                        while batch := result.fetchmany(10_000):
                            for row in batch:
                                if json_columns:
                                    row = list(row)
                                    for i in json_columns:
                                        row[i] = None if row[i] is None else Jsonb(row[i])
                                copy.write_row(row)
                            count += len(batch)
                    copied[table] = count
        except psycopg.errors.LockNotAvailable:
            raise StoreError(f"the PostgreSQL copy waited {lock_timeout_s} s for readers' open transactions on "
                             f"schema {schema!r} and gave up; nothing was changed there. Ask them to commit "
                             "(or use autocommit) and run again") from None
        finally:
            connection.close()
    finally:
        source.close()
    return copied


def postgres_url(store_config: Any) -> str | None:
    """The configured server URL: ``store.postgres_url``, else the environment variable it names."""
    secret = getattr(store_config, "postgres_url", None)
    if secret is not None:
        value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)
        if value.strip():
            return value.strip()
    env = getattr(store_config, "postgres_url_env", None)
    if not env:
        return None
    return (os.environ.get(env) or "").strip() or None
