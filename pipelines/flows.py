"""Prefect flows: ``collect`` (a task per source) and ``pipeline`` (collect, then every enabled stage).

Both take a config path and ``--set`` overrides as parameters, so a deployment (nightly or a researcher's
rerun) passes the same things a command line does. The work itself lives in ``pipelines.runner`` and the
stage modules; the flows add scheduling, retries of nothing that is not idempotent, and the Prefect UI's view.
"""

from __future__ import annotations

import sys
from typing import Any

from edumine.pipelines.prefect_env import configure_prefect, note_servers

configure_prefect()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from edumine import registry  # noqa: E402
from edumine.config import load_config  # noqa: E402
from edumine.faults import kill_point  # noqa: E402
from edumine.pipelines import runner  # noqa: E402
from edumine.pipelines.task_runners import (TaskRunnerName, collect_source_detached, make_task_runner,  # noqa: E402
                                            run_all, stage_mapper)
from edumine.stages import pipeline_stages  # noqa: E402,F401  (tests and callers import it from here)

# Runs opened by a parent flow, so that its subflows share the run (one lock, one manifest).
_ACTIVE: dict[str, runner.RunContext] = {}


@task(name="collect-source", cache_policy=NO_CACHE, persist_result=False)
def collect_source_task(run_id: str, index: int, config: str | None = None,
                        overrides: list[str] | None = None) -> dict[str, Any]:
    # Prefect pickles a task's function by value for a task runner, copying module globals such as _ACTIVE:
    # look the run up through the module itself. On a Dask worker in another process it is not there.
    active = getattr(sys.modules.get(__name__), "_ACTIVE", {})
    if run_id not in active and config is not None:
        report_dict = collect_source_detached(config, overrides or [], run_id, index)
        return {k: v for k, v in report_dict.items() if k != "files"}
    report = runner.collect_source(active[run_id], index)
    return {k: v for k, v in report.as_dict().items() if k != "files"}


@task(name="stage", cache_policy=NO_CACHE, persist_result=False)
def stage_task(run_id: str, stage_name: str) -> dict[str, Any]:
    ctx = _ACTIVE[run_id]
    return runner.run_stage(ctx, registry.stages.get(stage_name))


def _collect_all(ctx: runner.RunContext, config: str | None = None, overrides: list[str] | None = None,
                 task_runner: TaskRunnerName = "default", dask_address: str | None = None) -> list[dict[str, Any]]:
    indices = range(len(ctx.config.sources))  # type: ignore[attr-defined]
    reports = run_all(collect_source_task, [{"run_id": ctx.run_id, "index": i, "config": config,
                                             "overrides": overrides} for i in indices],
                      [f"collect {ctx.config.source_label(i)}" for i in indices],
                      make_task_runner(task_runner, address=dask_address))
    for report in reports:  # collected by a worker in another process: the flow's manifest records it
        if report.pop("detached", False):
            ctx.inputs.append(report)
    return reports


@flow(name="collect", log_prints=False)
def collect_flow(config: str, overrides: list[str] | None = None, run_id: str | None = None,
                 task_runner: TaskRunnerName = "default", dask_address: str | None = None) -> dict[str, Any]:
    """Collect every configured source into the lake (a subflow of ``pipeline``, or a run of its own).

    ``task_runner="dask"`` collects the sources concurrently on Dask (an in-process cluster, or the one at
    ``dask_address``); see ``pipelines/task_runners.py``.
    """
    options = {"config": config, "overrides": overrides, "task_runner": task_runner, "dask_address": dask_address}
    if run_id is not None:
        return {"run_id": run_id, "sources": _collect_all(_ACTIVE[run_id], **options)}
    ctx = runner.open_run(load_config(config, overrides or []), "collect")
    return _run(ctx, lambda: {"sources": _collect_all(ctx, **options)})


@flow(name="pipeline", log_prints=False)
def pipeline_flow(config: str, overrides: list[str] | None = None, task_runner: TaskRunnerName = "default",
                  dask_address: str | None = None) -> dict[str, Any]:
    """The whole pipeline: collect, then preprocess, topics, lineage, themes, metrics, store and report.

    ``task_runner="dask"`` also runs the heavy stages' per-partition work (preprocessing, embedding, theme
    scoring) as Prefect tasks on Dask worker processes: a ``LocalCluster`` started for the run, or the cluster at
    ``dask_address`` (``pipelines/task_runners.py``). The tables are those of the default, in-process run."""
    settings = load_config(config, overrides or [])
    ctx = runner.open_run(settings, "pipeline")

    def body() -> dict[str, Any]:
        collected = collect_flow(config, overrides, run_id=ctx.run_id, task_runner=task_runner,
                                 dask_address=dask_address)
        kill_point("stage.collect.after")
        planned = runner.planned_stages(ctx)
        with stage_mapper(task_runner if planned else "default", address=dask_address) as mapper:
            ctx.mapper, ctx.map_workers = mapper, getattr(mapper, "workers", 1)
            if mapper is not None:  # the manifest says where the stages' partitions ran
                ctx.outputs["task_runner"] = {"kind": "dask", "workers": mapper.workers,
                                              "address": dask_address or "local cluster"}
            stages = runner.run_stages(ctx, planned,
                                       lambda stage: stage_task.with_options(name=stage.name)(ctx.run_id, stage.name))
        return {"sources": collected["sources"], "stages": stages}

    return _run(ctx, body)


def _run(ctx: runner.RunContext, body: Any) -> dict[str, Any]:
    note_servers()  # the flow runs, so a temporary server (if any) is up: noted, a killed run's is reaped later
    _ACTIVE[ctx.run_id] = ctx
    try:
        result = body()
    except BaseException as exc:
        runner.close_run(ctx, "failed", exc)
        raise
    finally:
        _ACTIVE.pop(ctx.run_id, None)
    manifest = runner.close_run(ctx, "completed")
    return {"run_id": ctx.run_id, "manifest": str(manifest), "lake": str(ctx.lake.root), **result}
