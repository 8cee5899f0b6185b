"""Rebuilding what a run finds damaged (edumine/integrity.py), around the runner's stage loop.

``run_rebuilding`` runs a stage body; when it meets a damaged derived table (``CorruptTable``, or an unexpected
error behind which a damaged file of the stage's declared tables is found) the damaged files are removed, the
table's owner stage runs again from its inputs, then the stage itself; a damaged model folder
(``CorruptArtefact``) is removed and the stage runs again, which rebuilds it. Each repair is a warning and a line
in the manifest's ``notes``; damaged posts are final (a clear error). ``planned_stages`` adds to a narrowed run
the owner of a table whose damaged files the run's start removed, when a planned stage reads it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from edumine import registry


def run_rebuilding(ctx: Any, stage: Any, *, body: Callable[[Any], tuple[dict[str, Any], Any]],
                   record: Callable[[Any, tuple[dict[str, Any], Any]], None]) -> tuple[dict[str, Any], Any]:
    """Run ``stage``; when it meets a damaged derived table or model (``edumine/integrity.py``), remove the
    damage, rebuild it by running its owner stage from its inputs, and run ``stage`` again (each table or
    artefact at most once per stage). Damaged posts are a clear error: they cannot be rebuilt."""
    from edumine import integrity
    from edumine.errors import EdumineError

    repaired: set[str] = set()
    while True:
        try:
            return body(stage)
        except integrity.CorruptArtefact as exc:
            if str(exc.path) in repaired:
                raise
            repaired.add(str(exc.path))
            shutil.rmtree(exc.path, ignore_errors=True) if exc.path.is_dir() else exc.path.unlink(missing_ok=True)
            ctx.note(f"{exc.name} at {exc.path} was damaged ({exc.reason}): removed; the {stage.name} stage "
                     "rebuilds it from its inputs")
            continue
        except integrity.CorruptTable as exc:
            damage = exc
        except EdumineError:
            raise
        except Exception:
            damage = _damage_behind(ctx, stage)
            if damage is None:
                raise
        if damage.raw or damage.table in repaired:
            raise damage from None
        repaired.add(damage.table)
        removed = integrity.remove_damaged(ctx.lake.root, damage)
        owner = registry.stages.get(damage.owner) if damage.owner in registry.stages.names() else None
        ctx.note(f"lake table {damage.table!r}: {damage.path.name} could not be read ({damage.reason}); removed "
                 f"{', '.join(removed)} and rebuilt the table with the {damage.owner} stage from its inputs")
        if owner is not None and owner.name != stage.name:
            record(owner, run_rebuilding(ctx, owner, body=body, record=record))


def _damage_behind(ctx: Any, stage: Any) -> Any:
    """After a stage failed with an unexpected error: the first damaged file among the tables it reads or
    writes (read in full, page checksums verified), or None when they are all sound."""
    from edumine import catalog, integrity

    for name in dict.fromkeys((*stage.inputs, *stage.optional_inputs, *stage.outputs)):
        if catalog.entry(name).kind == "table":
            damage = integrity.find_damage(ctx.lake.root, name)
            if damage is not None:
                return damage
    return None


def planned_stages(ctx: Any, only: list[str] | None = None) -> list[Any]:
    """The run's stages (``edumine.stages.pipeline_stages``), plus the owner of every derived table whose
    damaged files the run's start removed when a planned stage reads that table: it is rebuilt first."""
    from edumine import catalog
    from edumine.stages import pipeline_stages

    stages = pipeline_stages(ctx.config, only=only)
    names = {stage.name for stage in stages}
    read = {name for stage in stages for name in (*stage.inputs, *stage.optional_inputs)}
    damaged = {relative.split("/", 1)[0] for relative in ctx.outputs.get("recovery", {}).get("rebuilt_unreadable", [])}
    owners = sorted({catalog.CATALOG[t].owner for t in damaged & read if t in catalog.CATALOG} - names)
    owners = [owner for owner in owners if owner in registry.stages.names()]
    if not owners:
        return stages
    ctx.note(f"stage(s) {', '.join(owners)} added to the run to rebuild {', '.join(sorted(damaged & read))}")
    return pipeline_stages(ctx.config, only=sorted(names | set(owners)))
