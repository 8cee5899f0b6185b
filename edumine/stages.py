"""Pipeline stages after collection, found by discovery so that each stage lives in its own module.

A module in ``pipelines/stages/`` registers a ``Stage`` (and, if it has settings, a config section):

    SECTION = registry.config_sections.register("topics")(TopicsConfig)
    STAGE = registry.stages.register("topics")(Stage("topics", order=30, run=run_topics, section="topics"))

``run(ctx)`` reads from and writes to the lake through ``ctx.lake`` and returns a JSON-ready summary for
the run's manifest. Stages run in ``order``; a stage whose section has ``enabled: false`` is skipped.
Stage modules import heavy libraries inside ``run`` so that discovery stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from edumine import registry


@dataclass(frozen=True)
class Stage:
    name: str
    order: int
    run: Callable[[Any], dict[str, Any]]
    section: str | None = None
    description: str = ""


@lru_cache(maxsize=1)
def discover_stages() -> tuple[str, ...]:
    import edumine.pipelines.stages as package

    names = []
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
            names.append(module.name)
    return tuple(names)


def pipeline_stages(config: Any) -> list[Stage]:
    """The enabled stages for ``config``, in run order."""
    discover_stages()
    stages = sorted((stage for _, stage in registry.stages.items()), key=lambda s: (s.order, s.name))
    return [s for s in stages if s.section is None or getattr(getattr(config, s.section), "enabled", True)]
