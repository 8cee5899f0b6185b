"""Task runners for the flows: Prefect's default (one task after another in the flow's process) or Dask.

Two uses of Dask. **Collection** (one task per source) runs on an in-process ``LocalCluster`` of threads, as
described below. **The heavy stages** (preprocessing, embedding, theme scoring) hand their per-partition work to
``RunInfo.map`` (``edumine/stage_io.py``): with ``task_runner="dask"`` each group of lake partitions becomes a
Prefect task (``partition_task``) on a ``LocalCluster`` of worker *processes* started once for the run (or on the
cluster at ``dask_address``), and the results come back in the order given, so the tables written are those of
the in-process run (``stage_mapper``; docs/performance.md, "Distributed heavy stages").

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

import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, get_args

log = logging.getLogger(__name__)

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


# -- partition-parallel stage work -------------------------------------------------------------------------

WORKERS_ENV = "EDUMINE_DASK_WORKERS"  # worker processes of the run's own LocalCluster (default: the CPU count)


def function_ref(function: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level function, which a worker in another process imports (never a copy
    of the flow's memory, never a closure)."""
    module, name = function.__module__, function.__qualname__
    if module == "__main__" or "<" in name:
        raise ValueError(f"{module}.{name} cannot run on a Dask worker: map a module-level function of an "
                         "importable module")
    return f"{module}:{name}"


def resolve(ref: str) -> Callable[..., Any]:
    import importlib

    module, _, name = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def call_packed(ref: str, payload: bytes) -> Any:
    """What a partition task runs: the function named by ``ref`` on the pickled keyword arguments."""
    return resolve(ref)(**pickle.loads(payload))


def _partition_task() -> Any:
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    # The arguments travel as one pickled blob: Prefect walks a task's parameters (looking for futures) several
    # times per submission, which costs seconds on 50,000 texts, and it need not see inside them.
    return task(name="partition", cache_policy=NO_CACHE, persist_result=False)(call_packed)


class DaskMapper:
    """``RunInfo.map`` on a Dask cluster: one Prefect task per item, submitted at once through a
    ``DaskTaskRunner`` connected to ``address``, results gathered in the items' order."""

    def __init__(self, address: str, workers: int | None = None) -> None:
        self.address = address
        self.workers = workers or self._threads()

    def _threads(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            return max(1, sum(client.nthreads().values()))

    def __call__(self, function: Callable[..., Any], items: Sequence[dict[str, Any]], *,
                 name: str = "partition") -> list[Any]:
        from prefect_dask import DaskTaskRunner

        ref = function_ref(function)
        if not items:
            return []
        task = _partition_task()
        with DaskTaskRunner(address=self.address) as runner:
            futures = [runner.submit(task.with_options(name=f"{name}-{number}"),
                                     parameters={"ref": ref, "payload": pickle.dumps(dict(item), protocol=5)})
                       for number, item in enumerate(items)]
            for future in futures:
                future.wait()
            results = [future.result() for future in futures]
        restore_environ()
        return results

    def __repr__(self) -> str:
        return f"DaskMapper({self.address!r})"


def worker_count() -> int:
    value = os.environ.get(WORKERS_ENV)
    return max(1, int(value)) if value else max(1, os.cpu_count() or 1)


def prefect_api_env() -> dict[str, str]:
    """The Prefect API the flow reports to (a temporary server's too), for worker processes, so that they join
    this run's server rather than each start a temporary one."""
    if os.environ.get("PREFECT_API_URL"):
        return {"PREFECT_API_URL": os.environ["PREFECT_API_URL"]}
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:  # outside a flow run: no temporary server to share, and none started here
        return {}
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            url = str(client.api_url)
    except Exception:  # noqa: BLE001  (no API at all: the workers run tasks without one, as the flow does)
        return {}
    return {"PREFECT_API_URL": url.rstrip("/")} if url.startswith("http") else {}


@contextmanager
def stage_mapper(kind: str = "default", *, address: str | None = None,
                 workers: int | None = None) -> Iterator[Callable[..., list[Any]] | None]:
    """The mapper the heavy stages get for the run: None (in-process, the default), or a ``DaskMapper`` on the
    cluster at ``address``, or on a ``LocalCluster`` of ``workers`` processes (one thread each) that lives
    as long as this context."""
    if kind not in RUNNERS:
        raise ValueError(f"task_runner must be one of {RUNNERS}, not {kind!r}")
    if kind == "default":
        yield None
        return
    if address:
        yield DaskMapper(address)
        return
    from distributed import LocalCluster

    count = workers or worker_count()
    env = prefect_api_env()
    with kept_environ(), LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                                      dashboard_address=":0", env=env) as cluster:
        log.info("heavy stages on a local Dask cluster of %d worker processes (%s)", count,
                 cluster.scheduler_address)
        restore_environ()
        yield DaskMapper(cluster.scheduler_address, count)


_ENVIRON: list[dict[str, str | None]] = []


@contextmanager
def kept_environ() -> Iterator[None]:
    """Keep this process's thread settings as they are while Dask starts worker processes.

    A Nanny sets ``OMP_NUM_THREADS=1`` and the like (``distributed.nanny.pre-spawn-environ``) in the *parent's*
    ``os.environ`` before it spawns a worker, and leaves them there. A BLAS library this process loads later (scipy's
    LAPACK, first imported by the topic stage's SVD) then runs on one thread and rounds differently: the fitted
    embedding state, and every vector after it, would differ from the in-process run's in the last bits. The
    workers keep the setting (one thread each is what they should have)."""
    import dask

    keys = set(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}) | {
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_"}
    _ENVIRON.append({key: os.environ.get(key) for key in keys})
    try:
        yield
    finally:
        restore_environ()
        _ENVIRON.pop()


def restore_environ() -> None:
    """Put back the variables ``kept_environ`` saved (a worker restarted by its Nanny sets them again)."""
    for saved in _ENVIRON[-1:]:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
