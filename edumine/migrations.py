"""Lake migrations: bring tables written by an older edumine to the current column names.

Each migration is idempotent and checks file footers only, so it is cheap to run at the start of every run
(``open_run``) and by hand (``edumine migrate --lake DIR``). Files are rewritten atomically.

- ``window-label`` (2026-12): the window label column was ``window``, a SQL reserved word analysts trip on;
  it is ``window_label`` in every table now, beside ``window_start``.
- ``event-scope`` (2026-12): ``topic_events`` says which rows count the whole corpus (``scope = 'all'``) and
  which one community (``scope = 'community'``); it mixed both, so a plain count counted events twice.
- ``models-by-concern`` (2026-12): ``models/`` moved into subpackages (``edumine.models.themes_estimators`` is
  ``edumine.models.themes.estimators`` now). Pickled artefacts (theme models) name their classes by module, so
  ``load_pickle`` reads the old names as the new ones and a trained model survives the upgrade.
- ``lake-artefacts`` (2026-12): the embedding cache moved from ``<lake>/_cache/`` to ``<lake>/cache/`` (a
  catalog artefact like the saved models); ``topic_windows``, which no stage read, is no longer written and
  a stale copy is removed; a theme model trained by an older edumine under ``data/models/themes`` (beside the
  demo lake ``data/lake``) moves into the lake's ``models/themes``, so it is not trained again.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq

from edumine.lake import write_parquet_atomic

log = logging.getLogger(__name__)

RENAMED_COLUMNS = {"window": "window_label"}
MOVED_MODULES = {
    "edumine.models.clean": "edumine.models.text.clean",
    "edumine.models.preprocess": "edumine.models.text.preprocess",
    "edumine.models.embeddings": "edumine.models.embeddings.backends",
    "edumine.models.embeddings_concat": "edumine.models.embeddings.concat",
    "edumine.models.embeddings_onnx": "edumine.models.embeddings.onnx",
    "edumine.models.topics": "edumine.models.topics.model",
    "edumine.models.topic_catchall": "edumine.models.topics.catchall",
    "edumine.models.topic_ids": "edumine.models.topics.ids",
    "edumine.models.topic_update": "edumine.models.topics.update",
    "edumine.models.topic_windows": "edumine.models.topics.windows",
    "edumine.models.evaluation": "edumine.models.topics.evaluation",
    "edumine.models.lineage": "edumine.models.lineage.tracking",
    "edumine.models.lineage_eval": "edumine.models.lineage.evaluation",
    "edumine.models.themes": "edumine.models.themes.classifier",
    "edumine.models.themes_calibration": "edumine.models.themes.calibration",
    "edumine.models.themes_card": "edumine.models.themes.card",
    "edumine.models.themes_config": "edumine.models.themes.config",
    "edumine.models.themes_data": "edumine.models.themes.data",
    "edumine.models.themes_embed": "edumine.models.themes.embed",
    "edumine.models.themes_estimators": "edumine.models.themes.estimators",
    "edumine.models.themes_eval": "edumine.models.themes.evaluation",
    "edumine.models.themes_labelling": "edumine.models.themes.labelling",
    "edumine.models.themes_zeroshot": "edumine.models.themes.zeroshot",
    "edumine.models.codebook": "edumine.models.themes.codebook",
}


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def load_pickle(handle: IO[bytes]) -> Any:
    """``pickle.load`` of our own artefacts, reading classes under the module names they had when written."""
    return _RenamingUnpickler(handle).load()
WINDOW_TABLES = ("doc_topics", "topic_prevalence", "topic_events", "theme_prevalence")


def _rename_columns(path: Path, renames: dict[str, str]) -> bool:
    names = pq.read_schema(path).names
    todo = {old: new for old, new in renames.items() if old in names and new not in names}
    if not todo:
        return False
    table = pq.read_table(path)
    write_parquet_atomic(table.rename_columns([todo.get(name, name) for name in table.column_names]), path)
    return True


def _add_event_scope(path: Path) -> bool:
    import pyarrow as pa

    names = pq.read_schema(path).names
    if "scope" in names or "community" not in names:
        return False
    table = pq.read_table(path)
    scope = pa.array(["all" if c == "all" else "community" for c in table.column("community").to_pylist()],
                     pa.string())
    write_parquet_atomic(table.add_column(names.index("community") + 1, "scope", scope), path)
    return True


def migrate_lake(root: str | Path) -> list[str]:
    """Apply every migration to the lake at ``root``; returns the files rewritten (relative paths)."""
    root = Path(root)
    changed = []
    for table in WINDOW_TABLES:
        folder = root / table
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.parquet")):
            if path.name.startswith(".") or not _rename_columns(path, RENAMED_COLUMNS):
                continue
            changed.append(str(path.relative_to(root)))
    if changed:
        log.info("migrated %d lake file(s): column `window` is now `window_label`", len(changed))
    scoped = [str(path.relative_to(root)) for path in sorted((root / "topic_events").rglob("*.parquet"))
              if not path.name.startswith(".") and _add_event_scope(path)] if (root / "topic_events").is_dir() else []
    if scoped:
        log.info("migrated %d topic_events file(s): column `scope` added (all | community)", len(scoped))
    moved = move_artefacts(root)
    return changed + [p for p in scoped if p not in changed] + moved


def move_artefacts(root: Path) -> list[str]:
    """``_cache`` -> ``cache``; the unread ``topic_windows`` goes; ``data/models/themes`` of a lake at
    ``data/lake`` moves into ``<lake>/models/themes`` (only when the lake has no theme models yet)."""
    moved = []
    old_cache, new_cache = root / "_cache", root / "cache"
    if old_cache.is_dir() and not new_cache.exists():
        os.replace(old_cache, new_cache)
        moved.append("_cache -> cache")
    if (root / "topic_windows").is_dir():
        shutil.rmtree(root / "topic_windows")
        moved.append("topic_windows (removed: no stage reads it)")
    legacy = root.parent / "models" / "themes"
    target = root / "models" / "themes"
    if root.name == "lake" and legacy.is_dir() and any(legacy.glob("*/model.pkl")) and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(legacy), str(target))
        moved.append(f"{legacy} -> models/themes")
    if moved:
        log.info("migrated lake artefacts: %s", "; ".join(moved))
    return moved
