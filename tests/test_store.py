"""The summary store: what it holds, atomic refresh, read-only queries, and the PostgreSQL copy."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from summary_fixtures import collect_lake, copy_lake, write_model_tables


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake after metrics and store ran (no topic or theme tables)."""
    from edumine.pipelines.runner import run_pipeline

    base = tmp_path_factory.mktemp("store")
    config = collect_lake(base / "lake", base / "extra")
    run_pipeline(config, only=["metrics", "store"])
    return base / "lake"


def test_store_holds_runs_activity_and_views_and_tolerates_missing_tables(built_lake: Path) -> None:
    con = duckdb.connect(str(built_lake / "summary.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert tables == {"runs", "community_activity", "store_contents"}
        assert views == {"posts"}
        runs = con.execute("SELECT run_id, flow, status, records, config_hash FROM runs ORDER BY started_at").fetchall()
        assert [r[1] for r in runs] == ["collect", "pipeline"]
        assert runs[0][2] == "completed" and runs[0][3] == 1956 + 40
        assert con.execute("SELECT sum(contributions) FROM community_activity").fetchone()[0] == 1956 + 40
        assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 1956 + 40
        kinds = dict(con.execute("SELECT name, kind FROM store_contents").fetchall())
        assert kinds == {"runs": "table", "community_activity": "table", "posts": "view"}
    finally:
        con.close()


def test_store_copies_model_tables_and_is_replaced_atomically(built_lake: Path, tmp_path: Path) -> None:
    from edumine.store import SUMMARY_TABLES, build_store

    lake = copy_lake(built_lake, tmp_path / "lake")
    reader = duckdb.connect(str(lake / "summary.duckdb"), read_only=True)  # a reader of the old store
    old_inode = (lake / "summary.duckdb").stat().st_ino
    write_model_tables(lake)
    summary = build_store(lake, run_id="test-run")
    assert set(summary["tables"]) == {"runs", *SUMMARY_TABLES} and summary["missing"] == ["docs"]
    assert set(summary["views"]) == {"posts", "doc_topics", "doc_themes"}
    assert (lake / "summary.duckdb").stat().st_ino != old_inode
    assert not list(lake.glob(".tmp-*")), "the temporary store file must not be left behind"
    # the old reader still sees the old, complete store; a new reader sees the new one
    assert reader.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0] == 3
    reader.close()
    con = duckdb.connect(str(lake / "summary.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM topic_events WHERE event = 'merged'").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM doc_topics").fetchone()[0] == 920 + 1
        assert con.execute("SELECT built_by_run FROM store_contents LIMIT 1").fetchone()[0] == "test-run"
    finally:
        con.close()


def test_edumine_query_reads_the_store_and_refuses_writes(built_lake: Path) -> None:
    from edumine.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["query", "select * from community_activity order by 1", "--lake", str(built_lake),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["window_label"] for r in rows] == ["2017H2", "2018H1"]
    assert rows[0]["posts"] == 387 and rows[0]["contributors"] == 379
    runs = runner.invoke(app, ["query", "select count(*) as n from runs", "--lake", str(built_lake), "-f", "csv"])
    assert runs.exit_code == 0 and runs.stdout.splitlines()[1] == "2"
    for sql in ("delete from community_activity", "create table x as select 1", "drop table runs",
                "attach 'x.duckdb' as x", "copy runs to 'out.csv'", "select 1; insert into runs select * from runs",
                "explain analyze copy (select 1) to 'out.csv'", "/* c */ EXPLAIN ANALYSE delete from runs"):
        refused = runner.invoke(app, ["query", sql, "--lake", str(built_lake)])
        assert refused.exit_code == 2 and "refused" in refused.output, sql
    assert not Path("out.csv").exists()
    explained = runner.invoke(app, ["query", "explain analyze select count(*) from posts", "--lake", str(built_lake)])
    assert explained.exit_code == 0, explained.output
    con = duckdb.connect(str(built_lake / "summary.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    con.close()


# -- PostgreSQL ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """A throwaway PostgreSQL server (initdb + pg_ctl), on a Unix socket in a temporary folder."""
    binaries = [shutil.which(name) for name in ("initdb", "pg_ctl", "postgres")]
    if not all(binaries):
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl, postgres) are not on PATH: cannot start a test server")
    run_as: dict = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' account exists to run a test server as")
        run_as = {"user": account.pw_uid, "group": account.pw_gid}
    home = Path(tempfile.mkdtemp(prefix="edumine-pg-"))
    if run_as:
        os.chown(home, run_as["user"], run_as["group"])
    data, port = home / "data", _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    init = subprocess.run([binaries[0], "-D", str(data), "-U", "edumine", "--auth=trust", "-E", "UTF8"],
                          capture_output=True, text=True, env=env, **run_as)
    if init.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"initdb failed, no test server: {init.stderr.strip()[-300:]}")
    options = f"-p {port} -k {home} -c listen_addresses=''"
    start = subprocess.run([binaries[1], "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"],
                           capture_output=True, text=True, env=env, **run_as)
    if start.returncode != 0:
        log = (home / "log").read_text(errors="replace")[-300:] if (home / "log").exists() else start.stderr
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"the test PostgreSQL server did not start: {log.strip()}")
    try:
        yield f"postgresql://edumine@/postgres?host={home}&port={port}"
    finally:
        subprocess.run([binaries[1], "-D", str(data), "-m", "fast", "stop"], capture_output=True, env=env, **run_as)
        time.sleep(0.2)
        shutil.rmtree(home, ignore_errors=True)


def test_postgres_copy_matches_the_duckdb_store(built_lake: Path, tmp_path: Path, postgres_url: str) -> None:
    import psycopg

    from edumine.pipelines.runner import run_pipeline
    from summary_fixtures import lake_sources, make_config

    lake = copy_lake(built_lake, tmp_path / "lake")
    write_model_tables(lake)
    config = make_config(lake, lake_sources(tmp_path / "extra"),
                         store={"postgres_url": postgres_url, "postgres_schema": "analytics"})
    ctx = run_pipeline(config, only=["metrics", "store"])
    copied = ctx.outputs["store"]["postgres"]["tables"]
    assert set(copied) >= {"runs", "community_activity", "topics", "topic_events", "theme_prevalence"}
    duck = duckdb.connect(str(lake / "summary.duckdb"), read_only=True)
    with psycopg.connect(postgres_url, autocommit=True) as pg:
        for table, rows in copied.items():
            assert pg.execute(f'SELECT count(*) FROM analytics."{table}"').fetchone()[0] == rows
            assert duck.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == rows
        ours = duck.execute("SELECT window_start, contributors, response_rate FROM community_activity ORDER BY 1")
        theirs = pg.execute("SELECT window_start, contributors, response_rate FROM analytics.community_activity "
                            "ORDER BY 1")
        assert ours.fetchall() == theirs.fetchall()
        # The copy is made before the run closes; the run's row there gets its final status too.
        assert pg.execute("SELECT status FROM analytics.runs WHERE run_id = %s", [ctx.run_id]).fetchone() == \
            ("completed",)
        assert duck.execute("SELECT status FROM runs WHERE run_id = ?", [ctx.run_id]).fetchone() == ("completed",)
        terms = pg.execute("SELECT top_terms FROM analytics.topics WHERE topic_id = 1").fetchone()[0]
        assert terms == ["worksheets", "math"]  # lists arrive as JSON
        # a second copy replaces the tables instead of appending
        from edumine.store import copy_to_postgres

        copy_to_postgres(lake / "summary.duckdb", postgres_url, "analytics")
        assert pg.execute("SELECT count(*) FROM analytics.runs").fetchone()[0] == copied["runs"]
    duck.close()
    manifest = json.loads(ctx.manifest_path.read_text())
    assert postgres_url not in json.dumps(manifest)  # the URL never reaches the manifest


def test_a_damaged_store_is_rebuilt_not_updated(tmp_path: Path) -> None:
    """The store is updated from the last one; a last one that cannot be opened is replaced by a fresh build."""
    import duckdb

    from edumine.store import STORE_FILE, build_store

    lake = tmp_path / "lake"
    (lake / "runs").mkdir(parents=True)
    (lake / STORE_FILE).write_bytes(b"not a duckdb file" * 100)
    result = build_store(lake, run_id="r1")
    with duckdb.connect(str(lake / STORE_FILE), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM store_contents").fetchone()[0] == len(result["tables"]) + \
            len(result["views"])


def test_runs_are_ordered_by_start_time_not_by_run_id(tmp_path: Path) -> None:
    """Regression: run ids have one-second resolution and a random suffix, so two runs started in one second
    sorted by name at random (a killed run listed after its rerun made the crash matrix flaky)."""
    from edumine.manifest import run_manifests
    from edumine.store import manifest_rows

    for run_id, started in [("20260101T000000Z-ffffff", "2026-01-01T00:00:00.100000+00:00"),
                            ("20260101T000000Z-000000", "2026-01-01T00:00:00.900000+00:00"),
                            ("20251231T235959Z-aaaaaa", "2025-12-31T23:59:59.500000+00:00")]:
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        (tmp_path / "runs" / run_id / "manifest.json").write_text(json.dumps({"run_id": run_id, "started_at": started}))
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "manifest.json").write_text("{not json")
    expected = ["20251231T235959Z-aaaaaa", "20260101T000000Z-ffffff", "20260101T000000Z-000000"]
    assert [m["run_id"] for _, m in run_manifests(tmp_path)] == expected
    assert [row["run_id"] for row in manifest_rows(tmp_path)] == expected
