"""The ``edumine`` command line. Heavy libraries (Prefect, torch, spaCy) load only in the commands that need them."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from edumine.errors import EdumineError

app = typer.Typer(help="Mine educator social media: collect, model topics and themes, query the lake.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
console = Console(stderr=True, width=120)

from edumine.themes_cli import themes_app  # noqa: E402  (light: heavy libraries load inside its commands)

app.add_typer(themes_app, name="themes")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config, e.g. configs/default.yaml")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override a config key: --set windows.unit=year")]


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpcore", "urllib3", "numba", "prawcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(exc: Exception) -> None:
    code = getattr(exc, "code", "E-USER")
    console.print(f"[bold red]error[/] [{code}]: {exc}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _guard_prefect_server() -> Any:
    """Stop a temporary Prefect server a killed edumine left, and stop ours on SIGTERM/SIGHUP/SIGINT too; start
    this run's temporary server now (when Prefect would start one), so that it comes up while the pipeline is
    imported. Returns it for ``wait_for_server``."""
    from edumine.pipelines.prefect_env import configure_prefect, install_signal_handlers, reap_orphans, \
        start_server_early

    configure_prefect()
    reap_orphans()
    install_signal_handlers()
    return start_server_early()


def _summary(result: dict[str, Any]) -> None:
    table = Table(title=f"run {result['run_id']}", show_lines=False)
    for column in ("source", "records", "added", "updated", "duplicates", "filtered", "quarantined", "seconds"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for item in result.get("sources", []):
        table.add_row(item["label"], *(f"{item[k]:,}" if isinstance(item[k], int) else str(item[k]) for k in
                                       ("records", "added", "updated", "duplicates", "filtered", "quarantined_total",
                                        "seconds")))
    console.print(table)
    out = Console(width=200)
    out.print(f"lake:     {result['lake']}")
    for name in ("summary.duckdb", "report.html"):
        if (Path(result["lake"]) / name).exists():
            out.print(f"{name.split('.')[0] + ':':9} {Path(result['lake']) / name}")
    out.print(f"manifest: {result['manifest']}")
    out.print(f"query:    edumine query \"select community, count(*) from posts group by 1 order by 2 desc\" "
              f"--lake {result['lake']}")


@app.command()
def run(config: ConfigOpt, set_: SetOpt = None, verbose: bool = typer.Option(False, "--verbose", "-v"),
        task_runner: str = typer.Option("default", "--task-runner",
                                        help="default (in this process) or dask: sources collected concurrently and "
                                             "the heavy stages' partitions on Dask worker processes"),
        dask_address: Optional[str] = typer.Option(None, "--dask-address",
                                                   help="a Dask scheduler (tcp://host:8786; implies --task-runner "
                                                        "dask); default: a local cluster of EDUMINE_DASK_WORKERS "
                                                        "(CPU count) processes")) -> None:
    """Run the whole pipeline flow (collect, then every enabled stage) with Prefect."""
    _logging(verbose)
    try:
        from edumine.config import load_config

        from edumine.stages import pipeline_stages

        pipeline_stages(load_config(config, set_ or [], check_inputs=True))  # fail fast, before Prefect starts
        if dask_address and task_runner == "default":
            task_runner = "dask"  # a scheduler's address means: run on it
        if task_runner not in ("default", "dask"):
            raise EdumineError(f"--task-runner {task_runner!r} is not a task runner; use default or dask")
        server = _guard_prefect_server()
        from edumine.pipelines.flows import pipeline_flow
        from edumine.pipelines.prefect_env import wait_for_server

        wait_for_server(server)
        _summary(pipeline_flow(str(config), set_ or [], task_runner=task_runner, dask_address=dask_address))
    except EdumineError as exc:
        _fail(exc)


@app.command()
def collect(config: ConfigOpt, set_: SetOpt = None, verbose: bool = typer.Option(False, "--verbose", "-v"),
            prefect: Optional[bool] = typer.Option(
                None, "--prefect/--no-prefect",
                help="run as a Prefect flow; default: only when PREFECT_API_URL names a server (without one, "
                     "Prefect would start a temporary server, 20-40 s, that nothing needs)")) -> None:
    """Collect every configured source into the lake (the collection flow alone)."""
    _logging(verbose)
    try:
        from edumine.config import load_config

        settings = load_config(config, set_ or [], check_inputs=True)
        if prefect is None:
            prefect = bool(os.environ.get("PREFECT_API_URL"))
        if prefect:
            server = _guard_prefect_server()
            from edumine.pipelines.flows import collect_flow
            from edumine.pipelines.prefect_env import wait_for_server

            wait_for_server(server)
            _summary(collect_flow(str(config), set_ or []))
        else:
            _summary(_collect_in_process(settings))
    except EdumineError as exc:
        _fail(exc)


def _collect_in_process(settings: Any) -> dict[str, Any]:
    """The collect flow's work without Prefect: the same sources, manifest and lake (pipelines/runner.py)."""
    from edumine.pipelines.runner import run_collect

    ctx = run_collect(settings)
    sources = [{k: v for k, v in report.items() if k != "files"} for report in ctx.inputs]
    return {"run_id": ctx.run_id, "manifest": str(ctx.manifest_path), "lake": str(ctx.lake.root), "sources": sources}


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="one SELECT statement")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="take the lake from this config")] = None,
    lake: Annotated[Optional[Path], typer.Option("--lake", help="lake folder (instead of --config)")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
) -> None:
    """Read-only SQL over the lake's views (posts, docs, ...) and the summary store's tables."""
    try:
        if (config is None) == (lake is None):
            raise EdumineError("give exactly one of --config FILE or --lake DIR")
        if format not in ("table", "csv", "json"):
            raise EdumineError(f"--format must be table, csv or json, not {format!r}")
        if lake is None:
            from edumine.config import load_config

            lake = load_config(config).lake
        from edumine.query import run_query

        columns, rows = run_query(lake, sql)
    except EdumineError as exc:
        _fail(exc)
        return
    except Exception as exc:  # noqa: BLE001  (a damaged lake file: a clear message, not a traceback)
        _fail(EdumineError(_query_failure(exc, lake)))
        return
    _print_rows(columns, rows, format)


@app.command(name="catalog")
def catalog_command(lake: Annotated[Path, typer.Option("--lake", help="lake folder")],
                    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
                    ) -> None:
    """The lake's tables and artefacts: layer, owning stage, files, rows and size."""
    from edumine.catalog import describe

    if not lake.is_dir():
        _fail(EdumineError(f"no lake at {lake}: pass the folder a config's `lake:` names"))
    try:
        rows = describe(lake)
    except EdumineError as exc:  # a damaged file: named, with what to do
        _fail(exc)
        return
    if format in ("json", "csv"):
        columns = ["name", "layer", "owner", "kind", "present", "files", "rows", "mb", "bytes"]
        _print_rows(columns, [tuple(row[c] for c in columns) for row in rows], format)
        return
    _print_catalog(rows, lake)


def _size(size: int | None) -> str:
    if size is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return ""


def _print_catalog(rows: list[dict[str, Any]], lake: Path) -> None:
    """Tables, then artefacts (models, caches, runs, store, report): one line each, absent ones dimmed; fits
    80 columns."""
    from rich import box

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0), title=f"lake {lake}",
                  title_justify="left")
    for column, justify in (("name", "left"), ("layer", "left"), ("owner", "left"), ("files", "right"),
                            ("rows", "right"), ("size", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for index, row in enumerate(rows):
        present = row["present"]
        last_table = row["kind"] == "table" and (index + 1 == len(rows) or rows[index + 1]["kind"] != "table")
        table.add_row(row["name"] + ("/" if row["kind"] == "artefact" and "." not in row["name"] else ""),
                      row["layer"], row["owner"], "" if row["files"] is None else f"{row['files']:,}",
                      "" if row["rows"] is None else f"{row['rows']:,}", _size(row["bytes"]) if present else "absent",
                      style=None if present else "dim", end_section=last_table)
    Console(width=max(Console().width, 80)).print(table)
    sys.stdout.flush()
    tables = [r for r in rows if r["kind"] == "table"]
    artefacts = [r for r in rows if r["kind"] == "artefact"]
    console.print(f"{sum(r['present'] for r in tables)} of {len(tables)} tables present "
                  f"({sum(r['rows'] or 0 for r in tables):,} rows), {sum(r['present'] for r in artefacts)} of "
                  f"{len(artefacts)} artefacts; layers and owners: docs/store.md")


@app.command()
def migrate(lake: Annotated[Path, typer.Option("--lake", help="lake folder to bring up to date")]) -> None:
    """Rename columns of an older lake to the current names (every run also does this at its start)."""
    from edumine.migrations import migrate_lake

    if not lake.is_dir():
        _fail(EdumineError(f"no lake at {lake}: pass the folder a config's `lake:` names"))
    changed = migrate_lake(lake)
    console.print(f"{len(changed)} file(s) migrated" + "".join(f"\n  {path}" for path in changed))


def _query_failure(exc: Exception, lake: Any) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = ""
    if any(word in str(exc).lower() for word in ("parquet", "magic", "footer", "truncat", "corrupt", "no magic")):
        hint = (" A file of the lake cannot be read (truncated or corrupt?). A derived table (docs, topics, ...) is "
                "rebuilt by the next `edumine run`; a damaged posts file must be restored from a backup, or removed "
                "and its sources collected again.")
    return f"the query could not be answered over the lake {lake}: {type(exc).__name__}: {first}.{hint}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "is_integer") or isinstance(value, (int, str, bool)) or value is None:
        return value
    return str(value)


def _print_rows(columns: list[str], rows: list[tuple], format: str) -> None:
    if format == "json":
        sys.stdout.write(json.dumps([{c: _jsonable(v) for c, v in zip(columns, row)} for row in rows],
                                    ensure_ascii=False) + "\n")
    elif format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows([[_jsonable(v) for v in row] for row in rows])
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)
        sys.stdout.flush()
        console.print(f"{len(rows):,} row(s)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
