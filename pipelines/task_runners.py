"""Task runners for the flows: Prefect's default (one task after another in the flow's process) or Dask.

``task_runner="dask"`` runs the collection tasks (one per source) concurrently on a Dask cluster: by
default an in-process ``LocalCluster`` (threads; no extra processes, no extra Prefect servers), or the
cluster at ``dask_address`` for users who outgrow one machine. Live sources spend their time waiting on
the network, so threads overlap well; merges into the lake are serialised (``miners/ingest.py``), so two
sources writing one partition never race.

On a cluster's worker in another process, a task cannot see the flow's run context: it rebuilds what it
needs from the config (``collect_source_detached``): the same lake path, pseudonym key (set
``EDUMINE_PSEUDONYM_KEY`` on the workers or share the key file) and code must be available there, and
the lake must be on a filesystem the workers share (merges take a file lock beside the lake).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

TaskRunnerName = Literal["default", "dask"]
RUNNERS = get_args(TaskRunnerName)


def make_task_runner(kind: str = "default", *, address: str | None = None, threads: int = 4) -> Any:
    """None for Prefect's default runner, else a ``prefect_dask.DaskTaskRunner``."""
    if kind not in RUNNERS:
        raise ValueError(f"task_runner must be one of {RUNNERS}, not {kind!r}")
    if kind == "default":
        return None
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": 1, "processes": False, "threads_per_worker": threads,
                                          "dashboard_address": None})


def run_all(task: Any, parameter_sets: Sequence[dict[str, Any]], names: Sequence[str], runner: Any = None) -> list:
    """Run ``task`` once per parameter set and return the results in order.

    With no runner the tasks run one after another in this process (as before); with a task runner they are
    submitted at once and gathered, so a failing task still raises here, after the others finished.
    """
    if runner is None:
        return [task.with_options(name=name)(**params) for name, params in zip(names, parameter_sets)]
    with runner:
        futures = [runner.submit(task.with_options(name=name), parameters=dict(params))
                   for name, params in zip(names, parameter_sets)]
        for future in futures:
            future.wait()
        return [future.result() for future in futures]


def collect_source_detached(config: str, overrides: list[str], run_id: str, index: int) -> dict[str, Any]:
    """Collect one source where the flow's run context is not at hand (a Dask worker in another process).

    The flow process holds the lake's lock and writes the manifest; this only ingests and returns the report.
    """
    from edumine.config import load_config
    from edumine.lake import Lake
    from edumine.miners.ingest import ingest_source
    from edumine.pipelines.runner import build_source
    from edumine.privacy import Pseudonymiser, load_key

    settings = load_config(config, overrides)
    source_config = settings.sources[index]  # type: ignore[attr-defined]
    report = ingest_source(build_source(settings, index), label=settings.source_label(index),
                           kind=source_config.kind, lake=Lake(settings.lake), run_id=run_id,
                           pseudonymiser=Pseudonymiser(load_key(settings.privacy.key_env, settings.privacy.key_file)),
                           chunk_rows=settings.collect.chunk_rows, plausible=settings.collect.plausible(),
                           user_profiles=settings.privacy.user_profiles,
                           skip_unchanged_files=settings.collect.skip_unchanged_files)
    return {**report.as_dict(), "detached": True}
