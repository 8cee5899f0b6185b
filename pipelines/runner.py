"""Run orchestration without Prefect: open a run, run stages, write the manifest.

The Prefect flows in ``pipelines.flows`` call these functions from their tasks; tests call them directly.
A run holds the lake's write lock from start to end, and always leaves a manifest, also when it fails.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from collections.abc import Callable
from typing import Any

from edumine import recovery, registry
from edumine.pipelines.rebuild import planned_stages, run_rebuilding  # noqa: F401  (flows call planned_stages)
from edumine.config import ConfigBase, config_as_dict, input_problems
from edumine.errors import ConfigError
from edumine.faults import kill_point
from edumine.lake import Lake
from edumine.manifest import code_version, library_versions, new_run_id, write_json_atomic
from edumine.migrations import migrate_lake
from edumine.miners.ingest import SourceReport, ingest_source
from edumine.privacy import Pseudonymiser, load_key
from edumine.progress import log_rate, phase
from edumine.schema import UTC

log = logging.getLogger(__name__)
_MANIFEST_LOCK = threading.Lock()


@dataclass
class RunContext:
    config: ConfigBase
    run_id: str
    lake: Lake
    pseudonymiser: Pseudonymiser
    flow: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    timings: dict[str, float] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    # The process's resident-memory high-water mark when each stage ended: a stage's own peak is at most
    # its figure, and the first stage whose figure jumps is the one that set it.
    peak_rss_mb: dict[str, int] = field(default_factory=dict)
    # Docs each stage handled per second of its run (stages whose summary counts ``docs``), and records per
    # second of collection.
    docs_per_s: dict[str, float] = field(default_factory=dict)
    # What the run repaired on its way (damaged tables or models rebuilt, registries restored): the manifest's
    # ``notes``, each also logged as a warning.
    notes: list[str] = field(default_factory=list)
    # How stages run their per-partition work (``RunInfo.map``): None in this process, else a
    # ``task_runners.DaskMapper`` the flow set for the run.
    mapper: Any = None
    map_workers: int = 1

    def note(self, text: str) -> None:
        log.warning("run %s: %s", self.run_id, text)
        self.notes.append(text)

    @property
    def manifest_path(self) -> Path:
        return self.lake.runs / self.run_id / "manifest.json"

    @contextmanager
    def stage(self, name: str):  # noqa: ANN201
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - started, 3)
            self.peak_rss_mb[name] = peak_rss_mb()


def peak_rss_mb() -> int:
    """Peak resident memory of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def build_source(config: ConfigBase, index: int) -> Any:
    source_config = config.sources[index]  # type: ignore[attr-defined]
    cls = registry.sources.get(source_config.kind)
    params = {name: getattr(source_config, name) for name in type(source_config).model_fields
              if name not in ("kind", "name")}
    return cls(**params)


def check_inputs(config: ConfigBase) -> None:
    """Fail before any work when a file source matches no file at all, saying where to point it."""
    sources = [source.model_dump(mode="json") for source in config.sources]  # type: ignore[attr-defined]
    problems = input_problems({"sources": sources}, Path.cwd())
    if problems:
        raise ConfigError("sources", problems)


def open_run(config: ConfigBase, flow: str) -> RunContext:
    """Lock the lake, clean up after runs that died (edumine/recovery.py), and start this run's manifest."""
    check_inputs(config)
    lake = Lake(config.lake)
    lake.lock()
    try:
        key = load_key(config.privacy.key_env, config.privacy.key_file)
        ctx = RunContext(config=config, run_id=new_run_id(), lake=lake, pseudonymiser=Pseudonymiser(key),
                         flow=flow)
        found: dict[str, Any] = {"interrupted_runs": recovery.mark_interrupted(lake.root, ctx.run_id),
                                 "rolled_back": recovery.recover(lake.root),
                                 # before migrating: a damaged file is removed (derived) or named (posts), not
                                 # met by the migration's schema read
                                 "rebuilt_unreadable": recovery.verify_derived(lake.root)}
        found["migrated_files"] = migrate_lake(lake.root)
        if flow == "pipeline":  # the stages' outputs become one commit: all of them, or none (a later run undoes)
            recovery.begin(lake.root, ctx.run_id)
    except Exception:
        lake.unlock()
        raise
    found = {k: v for k, v in found.items() if v}
    for relative in found.get("rebuilt_unreadable", []):
        ctx.note(f"derived table file {relative} could not be read: removed at the run's start; the stage that "
                 "owns it rebuilds it from its inputs")
    if found.get("migrated_files"):
        ctx.outputs["migrated_files"] = found.pop("migrated_files")
    if found:
        ctx.outputs["recovery"] = found
    write_manifest(ctx, status="running")
    log.info("run %s started; lake %s", ctx.run_id, lake.root)
    return ctx


def collect_source(ctx: RunContext, index: int) -> SourceReport:
    source_config = ctx.config.sources[index]  # type: ignore[attr-defined]
    label = ctx.config.source_label(index)
    with ctx.stage("collect"):
        try:
            report = ingest_source(build_source(ctx.config, index), label=label, kind=source_config.kind,
                                   lake=ctx.lake, run_id=ctx.run_id, pseudonymiser=ctx.pseudonymiser,
                                   chunk_rows=ctx.config.collect.chunk_rows,
                                   plausible=ctx.config.collect.plausible(),
                                   user_profiles=ctx.config.privacy.user_profiles,
                                   skip_unchanged_files=ctx.config.collect.skip_unchanged_files)
        except Exception:
            from edumine.integrity import find_damage

            damage = find_damage(ctx.lake.root, "posts")  # merging read a damaged posts file: say which
            if damage is None:
                raise
            raise damage from None
    ctx.inputs.append(report.as_dict())
    records = sum(item.get("records", 0) for item in ctx.inputs)
    if records and ctx.timings.get("collect"):
        ctx.docs_per_s["collect"] = round(records / ctx.timings["collect"], 1)
        log_rate(log, "stage collect", records, "records", ctx.timings["collect"])  # all sources so far
    write_manifest(ctx, status="running")
    return report


def close_run(ctx: RunContext, status: str, error: BaseException | None = None) -> Path:
    """Record how the run ended. Never fails on the lake's state: a failure while failing (an unreadable
    posts file) is recorded beside the first one, and the manifest is written whatever happens."""
    if status == "failed" and (isinstance(error, (KeyboardInterrupt, SystemExit)) or
                               type(error).__name__ == "TerminationSignal"):  # Prefect's SIGTERM inside a flow
        status = "interrupted"  # Ctrl-C, SIGTERM, SIGHUP: stopped, not broken
    try:
        with ctx.stage("summarise"):
            ctx.outputs["posts_rows"] = ctx.lake.count_posts()
    except Exception as exc:  # noqa: BLE001
        ctx.outputs["posts_rows"] = None
        ctx.outputs["summarise_error"] = f"{type(exc).__name__}: {exc}"
        if status == "completed":
            status, error = "failed", exc
    try:
        if status == "completed":
            recovery.commit(ctx.lake.root)
        else:  # a failed run's derived outputs go back to what the last completed run left
            rolled_back = recovery.recover(ctx.lake.root)
            if rolled_back:
                ctx.outputs["rolled_back"] = rolled_back
    except Exception as exc:  # noqa: BLE001  (the next run's start retries the rollback)
        ctx.outputs["rollback_error"] = f"{type(exc).__name__}: {exc}"
        log.warning("run %s: could not roll back its derived outputs (%s); the next run will", ctx.run_id, exc)
    try:
        write_manifest(ctx, status=status, error=error)
        if status == "completed":  # a run that did not complete has its outputs rolled back instead
            refresh_outputs(ctx)
    finally:
        ctx.lake.unlock()
    log.info("run %s %s; manifest %s", ctx.run_id, status, ctx.manifest_path)
    return ctx.manifest_path


def refresh_outputs(ctx: RunContext) -> None:
    """The store and the report are written while the run is still ``running``: each stage that ran and has an
    ``on_close`` hook brings its output to the final manifest, so that they and the manifest agree."""
    import json

    from edumine.stages import discover_stages

    discover_stages()
    manifest = json.loads(ctx.manifest_path.read_text(encoding="utf-8"))
    for name, stage in registry.stages.items():
        if stage.on_close is None or name not in ctx.outputs:
            continue
        try:
            stage.on_close(stage_params(ctx, stage), run_info(ctx, stage), manifest, ctx.outputs.get(name) or {})
        except Exception:  # noqa: BLE001  (the run's work is done; a stale status must not fail it)
            log.exception("could not write the final status of run %s into the %s stage's output", ctx.run_id, name)


def write_manifest(ctx: RunContext, *, status: str, error: BaseException | None = None) -> None:
    totals = {key: sum(item.get(key, 0) for item in ctx.inputs)
              for key in ("records", "added", "updated", "duplicates", "filtered", "quarantined_total")}
    manifest = {
        "run_id": ctx.run_id,
        "flow": ctx.flow,
        "status": status,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "started_at": ctx.started_at.isoformat(),
        "finished_at": None if status == "running" else datetime.now(UTC).isoformat(),
        "config_hash": ctx.config.config_hash(),
        "config": config_as_dict(ctx.config),
        "code_version": code_version(),
        "libraries": library_versions(),
        "pseudonym_key_id": ctx.pseudonymiser.key_id,
        "inputs": ctx.inputs,
        "totals": totals,
        "outputs": ctx.outputs,
        "timings": ctx.timings,
        "peak_rss_mb": ctx.peak_rss_mb,
        "docs_per_s": ctx.docs_per_s,
        "scores": ctx.scores,
        "notes": ctx.notes,
    }
    with _MANIFEST_LOCK:  # collection tasks on a Dask task runner's threads write it concurrently
        write_json_atomic(manifest, ctx.manifest_path)


def run_stage(ctx: RunContext, stage: Any) -> dict[str, Any]:
    """Run one stage of ``ctx``'s run: hand it its inputs, write what it returns, time it and record its
    summary in the manifest. The only place where a stage's tables are read and written."""
    kill_point(f"stage.{stage.name}.before")
    from edumine.stage_io import active_lake

    with ctx.stage(stage.name), active_lake(ctx.lake):
        summary, result = run_rebuilding(ctx, stage, body=lambda s: _run_body(ctx, s),
                                         record=lambda s, done: _record(ctx, s, *done))
    _record(ctx, stage, summary, result)
    docs, seconds = summary.get("docs"), ctx.timings.get(stage.name)
    if isinstance(docs, int) and docs and seconds:
        ctx.docs_per_s[stage.name] = round(docs / seconds, 1)
        log_rate(log, f"stage {stage.name}", docs, "docs", seconds)  # the manifest's docs_per_s, in the run log
    write_manifest(ctx, status="running")
    kill_point(f"stage.{stage.name}.after")
    return summary


def _record(ctx: RunContext, stage: Any, summary: dict[str, Any], result: Any) -> None:
    ctx.outputs[stage.name] = summary
    ctx.outputs.update(result.notes)
    if result.scores is not None:
        ctx.scores[stage.name] = result.scores


def _run_body(ctx: RunContext, stage: Any) -> tuple[dict[str, Any], Any]:
    """Hand the stage its inputs, write what it returns; (its summary, its result). What model code logs on
    ``edumine.repairs`` while it runs (a registry rebuilt, a damaged model refitted) joins the manifest's notes."""
    from edumine.integrity import noting

    with noting(ctx.notes.append):
        result = stage.run(stage_inputs(ctx, stage), stage_params(ctx, stage), run_info(ctx, stage))
        written = write_outputs(ctx.lake, stage, result)
    summary = result.summary(written) if callable(result.summary) else result.summary
    return summary or {}, result


def stage_inputs(ctx: RunContext, stage: Any) -> Any:
    """Lazy handles of everything the stage declared: inputs, optional inputs, its outputs (as the last run
    left them) and its caches."""
    from edumine.stage_io import Inputs

    return Inputs(ctx.lake, dict.fromkeys((*stage.inputs, *stage.optional_inputs, *stage.outputs, *stage.caches)))


def stage_params(ctx: RunContext, stage: Any) -> Any:
    return getattr(ctx.config, stage.section) if stage.section else None


def run_info(ctx: RunContext, stage: Any) -> Any:
    import json

    from edumine.stage_io import RunInfo

    def manifest() -> dict[str, Any] | None:
        path = ctx.manifest_path
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    extra = {} if ctx.mapper is None else {"map": ctx.mapper, "workers": ctx.map_workers}
    return RunInfo(run_id=ctx.run_id, windows_unit=ctx.config.windows.unit,  # type: ignore[attr-defined]
                   sections={name: getattr(ctx.config, name) for name in stage.uses}, manifest=manifest,
                   lake_root=ctx.lake.root, **extra)


def write_outputs(lake: Lake, stage: Any, result: Any) -> dict[str, Any]:
    """Write a stage's outputs atomically, in the order it gave them; returns what each write returned
    (a table's file, an artefact's folder and its builder's result). A kill point after each write
    (``<stage>.write``) lets the crash tests stop a stage between two of its outputs."""
    from edumine.stage_io import Artefact

    written: dict[str, Any] = {}
    for name, output in result.outputs.items():
        if name not in stage.outputs and name not in stage.caches:
            raise ValueError(f"stage {stage.name!r} returned {name!r}, which it does not declare as an output")
        if isinstance(output, Artefact):
            started = time.perf_counter()
            path, built = lake.write_artefact(name, output.relative, output.build, file=output.file)
            log.info("%s: wrote %s in %.1f s", stage.name, name, time.perf_counter() - started)
            if output.pointer is not None:
                relative, data = output.pointer
                from edumine.integrity import seal_digest

                write_json_atomic({**data, "path": str(path), **seal_digest(path)}, lake.table_path(name) / relative)
            written[name] = {"path": path, "result": built}
        elif output.mode == "partitions":
            count = 0
            for partition, table in output.data:
                lake.write_partition(name, partition, table)
                count += 1
                kill_point(f"{stage.name}.partition")
            removed = 0
            if output.keep_partitions is not None:
                keep = set(output.keep_partitions)
                for partition in lake.partitions(name):
                    if partition not in keep:
                        lake.drop_partition(name, partition)
                        removed += 1
            written[name] = {"partitions_written": count, "partitions_removed": removed}
        else:
            rows = getattr(output.data, "num_rows", None)  # an Arrow table; a DataFrame has a shape
            rows = len(output.data) if rows is None and hasattr(output.data, "shape") else rows
            if rows is None:
                written[name] = lake.write(name, output.data, mode=output.mode, key=output.key, schema=output.schema)
            else:
                with phase(f"{stage.name}: writing {name}", rows, unit="rows", logger=log):
                    written[name] = lake.write(name, output.data, mode=output.mode, key=output.key,
                                               schema=output.schema)
        kill_point(f"{stage.name}.write")
    return written


def run_stages(ctx: RunContext, stages: list[Any], call: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The one stage loop, for the plain runner and the Prefect flow alike: ``call(stage)`` runs a stage
    (``run_stage`` directly, or as a Prefect task that calls it) and returns its summary."""
    return {stage.name: call(stage) for stage in stages}


def run_collect(config: ConfigBase, flow: str = "collect") -> RunContext:
    """Collection alone, without Prefect: every source in order, then the manifest."""
    ctx = open_run(config, flow)
    try:
        for index in range(len(config.sources)):  # type: ignore[attr-defined]
            collect_source(ctx, index)
    except BaseException as exc:
        close_run(ctx, "failed", exc)
        raise
    close_run(ctx, "completed")
    return ctx


def run_pipeline(config: ConfigBase, *, only: list[str] | None = None) -> RunContext:
    """The whole pipeline without Prefect (tests, debugging): collect, then every enabled stage."""
    ctx = open_run(config, "pipeline")
    try:
        for index in range(len(config.sources)):  # type: ignore[attr-defined]
            collect_source(ctx, index)
        kill_point("stage.collect.after")
        stages = planned_stages(ctx, only)
        run_stages(ctx, stages, lambda stage: run_stage(ctx, stage))
    except BaseException as exc:
        close_run(ctx, "failed", exc)
        raise
    close_run(ctx, "completed")
    return ctx
