"""Rebuilding a lost or unreadable topic-id registry (``topic_ids``) without renumbering anything.

Every saved topic model keeps the registry and ``topic_id_history`` as they were after its run
(``<model>/stable_ids/``, written by ``StableTopicModel.save``; the folder is sealed with checksums). A lost
registry comes back from that copy, exactly; a lake whose models predate the copy gets it rebuilt from the
model's topics and the history. Every id the history has ever issued stays in the registry (inactive rows
for ids nobody can describe any more), so the next id is always above the highest ever issued. When neither
source is there, ``rebuild_registry`` raises an ``EdumineError`` saying so: a refit never numbers topics
afresh silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from edumine.models.topics.ids import (HISTORY_TABLE, REGISTRY_COLUMNS, REGISTRY_TABLE, STABLE_ID_COPIES,
                                       StableTopicModel, read_history)

log = logging.getLogger(__name__)


def latest_saved_model(lake: Any) -> Path | None:
    """The latest saved topic model's folder when it is intact (checksums), else None."""
    import json

    from edumine.integrity import CorruptArtefact, verify

    pointer = Path(lake.root) / "models" / "topics" / "latest.json"
    try:
        about = json.loads(pointer.read_text(encoding="utf-8")) if pointer.is_file() else None
        if about is None:
            return None
        verify(Path(about["path"]), "the saved topic model", seal_digest=about.get("seal"))
        return Path(about["path"])
    except (OSError, ValueError, KeyError, TypeError, CorruptArtefact) as exc:
        log.warning("the latest saved topic model cannot be used to rebuild stable ids (%s)", exc)
        return None


def saved_copy(lake: Any, table: str) -> pd.DataFrame | None:
    import pyarrow.parquet as pq

    folder = latest_saved_model(lake)
    path = folder / STABLE_ID_COPIES / f"{table}.parquet" if folder is not None else None
    return pq.read_table(path).to_pandas() if path is not None and path.is_file() else None


def rebuild_registry(lake: Any, note: Callable[[str], None] | None = None) -> pd.DataFrame | None:
    """The registry rebuilt after it was lost, with every id ever issued kept (so none is reused), or None when
    there never was one. Sources, best first: the copy the latest saved topic model keeps (exact); else that
    model's topics (ids, labels, terms; centroids are not kept, so matching falls back to terms) plus
    ``topic_id_history`` for ids no longer active. Raises ``EdumineError`` rather than renumbering."""
    from edumine.errors import EdumineError

    history = read_history(lake, note)
    folder = latest_saved_model(lake)
    pointer = Path(lake.root) / "models" / "topics" / "latest.json"
    if history is None and folder is None and not pointer.exists():
        return None  # no fit yet: the first refit starts the numbering
    registry = saved_copy(lake, REGISTRY_TABLE)
    source = "the copy kept by the latest saved topic model"
    if registry is None and folder is not None and history is not None and len(history):
        registry, source = _registry_from_model(folder, history), "the latest saved topic model and topic_id_history"
    if registry is None:
        raise EdumineError(
            f"the topic-id registry ({REGISTRY_TABLE}) of {lake.root} is lost and cannot be rebuilt: "
            + ("the latest saved topic model is missing or damaged" if folder is None else
               f"{HISTORY_TABLE} is missing too") + ", so the ids issued so far are unknown and a refit would "
            "renumber every topic researchers may have cited. Restore the lake's topic_ids/ (or models/topics/) "
            "from a backup; or, to start a new numbering knowingly, remove models/topics/ and topic_id_history/")
    issued = set(registry["stable_id"].astype(int))
    if history is not None and len(history):
        reserved = history[~history["stable_id"].astype(int).isin(issued)].drop_duplicates("stable_id", keep="last")
        if len(reserved):  # ids the source did not know: kept inactive, so that they are never issued again
            rows = [{"stable_id": int(r.stable_id), "label": r.label or "", "terms": [], "weights": [],
                     "centroid": None, "embedding_key": "", "size": 0, "first_run": r.run_id,
                     "last_run": r.run_id, "active": False} for r in reserved.itertuples(index=False)]
            registry = pd.concat([registry, pd.DataFrame(rows, columns=REGISTRY_COLUMNS)], ignore_index=True)
    registry = registry.sort_values("stable_id").reset_index(drop=True)
    (note or log.warning)(f"{REGISTRY_TABLE} was missing: rebuilt from {source} ({len(registry)} ids, highest "
                          f"{int(registry['stable_id'].max()) if len(registry) else -1} kept reserved)")
    return registry


def _registry_from_model(folder: Path, history: pd.DataFrame) -> pd.DataFrame:
    """Registry rows of a saved model's topics (no centroids: matched by terms) plus history's other ids."""
    model = StableTopicModel.load(folder)
    key = model.inner.manifest_.get("embedding_key", "")
    seen = history[history["status"] != "retired"]
    first = seen.groupby("stable_id")["run_id"].first().to_dict()
    last = seen.groupby("stable_id")["run_id"].last().to_dict()
    rows = []
    for stable in sorted(t for t in model.mapping.values() if t >= 0):
        terms = model.top_terms(stable, 25)
        size = seen[seen["stable_id"] == stable]["size"]
        rows.append({"stable_id": stable, "label": model.label(stable), "terms": [t for t, _ in terms],
                     "weights": [float(w) for _, w in terms], "centroid": None, "embedding_key": key,
                     "size": int(size.iloc[-1]) if len(size) else 0, "first_run": first.get(stable),
                     "last_run": last.get(stable), "active": True})
    return pd.DataFrame(rows, columns=REGISTRY_COLUMNS)
