"""Rebuilding a lost or unreadable topic-id registry (``topic_ids``) without renumbering anything.

Every saved topic model keeps the registry, ``topic_id_history`` and ``topic_updates`` as they were after its run
(``<model>/stable_ids/``, written by the topic stage with the model, which is then sealed with checksums). A
lost registry comes back from that copy, exactly; a lake whose models predate the copy gets it rebuilt from
the model's topics and the history. Every id the history has ever issued stays in the registry (inactive
rows for ids nothing describes any more), so the next id is always above the highest ever issued. When
neither source is there, ``rebuild_registry`` raises an ``EdumineError`` saying so: a refit never numbers
topics afresh silently. Repairs are logged on ``edumine.repairs`` (the run manifest's notes).

Tables in, tables out: the topic stage reads the lake (through the runner) and hands these functions what it
read and the latest model's folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from edumine.integrity import REPAIRS
from edumine.models.topics.ids import REGISTRY_COLUMNS, StableTopicModel

log = logging.getLogger(__name__)

REGISTRY_TABLE = "topic_ids"
HISTORY_TABLE = "topic_id_history"
STABLE_ID_COPIES = "stable_ids"  # folder in a saved topic model: the registry and history as of that run


def intact(folder: Path | None, seal: str | None) -> Path | None:
    """``folder`` when it passes its checksums (``edumine/integrity.py``), else None (logged)."""
    from edumine.integrity import CorruptArtefact, verify

    if folder is None:
        return None
    try:
        verify(folder, "the saved topic model", seal_digest=seal)
    except CorruptArtefact as exc:
        log.warning("%s", exc)
        return None
    return folder


def save_copies(folder: Path, tables: dict[str, Any]) -> None:
    """Keep the stage's logs this model goes with (``topic_ids``, ``topic_id_history``, ``topic_updates``: tables
    no input can rebuild) inside its folder, before it is sealed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, frame in tables.items():
        if frame is not None:
            (Path(folder) / STABLE_ID_COPIES).mkdir(parents=True, exist_ok=True)
            table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(table, Path(folder) / STABLE_ID_COPIES / f"{name}.parquet")


def saved_copy(folder: Path | None, table: str) -> pd.DataFrame | None:
    import pyarrow.parquet as pq

    path = Path(folder) / STABLE_ID_COPIES / f"{table}.parquet" if folder is not None else None
    return pq.read_table(path).to_pandas() if path is not None and path.is_file() else None


def restore(name: str, frame: pd.DataFrame | None, folder: Path | None) -> pd.DataFrame | None:
    """A log table as read (``topic_id_history``, ``topic_updates``); when it is lost, the copy kept by the
    (intact) latest saved model, which holds every row up to that model's run."""
    if frame is not None:
        return frame
    copy = saved_copy(folder, name)
    if copy is not None:
        REPAIRS.warning("%s was missing: restored from the copy kept by the latest saved topic model (%d rows)",
                        name, len(copy))
    return copy


def restore_history(history: pd.DataFrame | None, folder: Path | None) -> pd.DataFrame | None:
    return restore(HISTORY_TABLE, history, folder)


def rebuild_registry(registry: pd.DataFrame | None, history: pd.DataFrame | None, folder: Path | None, *,
                     saved_model: bool, lake: str = "the lake") -> pd.DataFrame | None:
    """``registry`` as read, or, when it is lost, rebuilt with every id ever issued kept; None when there never
    was one (no saved model, no history). ``folder``: the latest saved model when intact; ``saved_model``:
    whether a latest model is on record at all (intact or not). Raises ``EdumineError`` rather than
    renumbering."""
    from edumine.errors import EdumineError

    if registry is not None:
        return registry
    if (history is None or not len(history)) and not saved_model:
        return None  # no fit yet: the first refit starts the numbering
    rebuilt = saved_copy(folder, REGISTRY_TABLE)
    source = "the copy kept by the latest saved topic model"
    if rebuilt is None and folder is not None and history is not None and len(history):
        rebuilt, source = _registry_from_model(folder, history), "the latest saved topic model and topic_id_history"
    if rebuilt is None:
        raise EdumineError(
            f"the topic-id registry ({REGISTRY_TABLE}) of {lake} is lost and cannot be rebuilt: "
            + ("the latest saved topic model is missing or damaged" if folder is None else
               f"{HISTORY_TABLE} is missing too") + ", so the ids issued so far are unknown and a refit would "
            "renumber every topic researchers may have cited. Restore the lake's topic_ids/ (or models/topics/) "
            "from a backup; or, to start a new numbering knowingly, remove models/topics/ and topic_id_history/")
    issued = set(rebuilt["stable_id"].astype(int))
    if history is not None and len(history):
        reserved = history[~history["stable_id"].astype(int).isin(issued)].drop_duplicates("stable_id", keep="last")
        if len(reserved):  # ids the source did not know: kept inactive, so that they are never issued again
            rows = [{"stable_id": int(r.stable_id), "label": r.label or "", "terms": [], "weights": [],
                     "centroid": None, "embedding_key": "", "size": 0, "first_run": r.run_id,
                     "last_run": r.run_id, "active": False} for r in reserved.itertuples(index=False)]
            rebuilt = pd.concat([rebuilt, pd.DataFrame(rows, columns=REGISTRY_COLUMNS)], ignore_index=True)
    rebuilt = rebuilt.sort_values("stable_id").reset_index(drop=True)
    REPAIRS.warning("%s was missing: rebuilt from %s (%d ids, the highest, %d, kept reserved)", REGISTRY_TABLE,
                    source, len(rebuilt), int(rebuilt["stable_id"].max()) if len(rebuilt) else -1)
    return rebuilt


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
