"""Pipeline stages after collection: each declares what it reads and writes, and the plan follows from that.

A module in ``pipelines/stages/`` registers a ``Stage`` (and, if it has settings, a config section):

    SECTION = registry.config_sections.register("topics")(TopicsConfig)
    STAGE = registry.stages.register("topics")(
        Stage("topics", run=run_topics, inputs=("docs",), outputs=("topics", ...), section="topics"))

Names in ``inputs``, ``optional_inputs`` and ``outputs`` are catalog entries (``edumine/catalog.py``).
``plan`` orders the enabled stages so that each runs after the producers of what it reads, and refuses a
plan in which a required input has no producer (no enabled stage, not collection, not already in the lake).
``optional_inputs`` are read when present (the store and report summarise whatever the run produced).
``caches`` are artefacts a stage reads and fills as it likes (embedding caches, keyed by content): they do
not order the plan. ``uses`` names config sections other than its own that the stage reads.

``run(inputs, params, run)`` takes lazy handles of what it declared, its config section and the run's id and
window unit, and returns a ``StageResult`` (``edumine/stage_io.py``): the runner reads and writes the lake,
the body never does. Stage modules import heavy libraries inside ``run`` so that discovery stays fast. One
loop runs a plan: ``pipelines.runner.run_stages``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edumine import catalog, registry
from edumine.errors import EdumineError
from edumine.stage_io import (Artefact, ArtefactInput, Inputs, Output, RunInfo, StageResult,  # noqa: F401
                              TableInput)

COLLECTED = ("posts", "quarantine", "runs", "_state")  # what collection writes before any stage runs
# What the summary store and the report read when the run produced it.
STORED = ("community_activity", "topics", "topic_prevalence", "topic_events", "topic_lineage", "theme_prevalence",
          "docs", "doc_topics", "doc_themes")
REPORTED = (*STORED, "summary.duckdb", "paper_table")


class PlanError(EdumineError):
    """The enabled stages cannot run: an input nobody produces, or a cycle."""

    code = "E-PLAN"


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Any], dict[str, Any]]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    section: str | None = None
    description: str = ""
    caches: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()  # other config sections the stage reads (windows is always given)
    # Called with (ctx, final manifest) once the run has closed, for a stage that ran: a stage whose output
    # records the run (the store's runs table, the report's provenance) brings it to the final status.
    on_close: Callable[[Any, dict[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        for name in (*self.inputs, *self.optional_inputs, *self.outputs, *self.caches):
            catalog.entry(name)  # a typo in a declaration fails at import, naming the table


def discover_stages() -> tuple[str, ...]:
    """Import every stage module (``registry.stages`` knows the package) and return the stage names."""
    return tuple(registry.stages.names())


def plan(stages: Iterable[Stage], available: Iterable[str] = ()) -> list[Stage]:
    """``stages`` in an order where each runs after the producers of its inputs (ties by name).

    ``available``: tables that exist already (in the lake), so a stage may read them without a producer."""
    stages = sorted(stages, key=lambda s: s.name)
    producer = {output: stage.name for stage in stages for output in stage.outputs}
    have = set(COLLECTED) | set(available)
    problems = [f"stage {stage.name!r} reads {name!r}, which no enabled stage writes (the catalog's owner is "
                f"{catalog.entry(name).owner!r}); enable that stage, or run it once so the table exists"
                for stage in stages for name in stage.inputs if name not in producer and name not in have]
    if problems:
        raise PlanError("the pipeline cannot run:\n  - " + "\n  - ".join(problems))
    needs = {stage.name: {producer[name] for name in (*stage.inputs, *stage.optional_inputs)
                          if name in producer and producer[name] != stage.name} for stage in stages}
    ordered: list[Stage] = []
    done: set[str] = set()
    while len(ordered) < len(stages):
        ready = [stage for stage in stages if stage.name not in done and needs[stage.name] <= done]
        if not ready:
            raise PlanError("the stages' inputs and outputs form a cycle: " +
                            ", ".join(s.name for s in stages if s.name not in done))
        ordered.append(ready[0])
        done.add(ready[0].name)
    return ordered


def pipeline_stages(config: Any, only: Iterable[str] | None = None) -> list[Stage]:
    """The enabled stages for ``config`` (or just those named in ``only``), in run order (see ``plan``)."""
    discover_stages()
    chosen = set(only) if only is not None else None
    enabled = [stage for _, stage in registry.stages.items()
               if (stage.name in chosen if chosen is not None else
                   stage.section is None or getattr(getattr(config, stage.section), "enabled", True))]
    lake = Path(config.lake)
    available = [name for name in catalog.CATALOG if (lake / name).exists()] if lake.is_dir() else []
    return plan(enabled, available)
