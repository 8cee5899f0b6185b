"""The data catalog: every table and artefact of the lake declared once, Kedro-style.

Each entry names the folder under ``<lake>/``, its layer (Kedro's: raw -> intermediate -> primary -> model
output -> reporting, plus ``models`` and ``state`` for fitted artefacts and high-water marks), the stage
that owns (writes) it, its partitioning, and where its pyarrow schema is declared. ``Lake.read`` and
``Lake.write`` go through it, so a table nobody declared cannot be written, and ``edumine catalog`` lists a
lake's tables with their row counts.

Naming rule for ideas shared across tables: ``window_label`` and ``window_start`` for windows, ``community``,
``topic_id``, ``uid``; never a SQL reserved word as a column name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Layer = Literal["raw", "intermediate", "primary", "model_output", "reporting", "models", "state"]
LAYERS: tuple[str, ...] = ("raw", "intermediate", "primary", "model_output", "reporting", "models", "state")


@dataclass(frozen=True)
class Entry:
    name: str
    layer: Layer
    owner: str
    description: str
    kind: Literal["table", "artefact"] = "table"
    partitioning: tuple[str, ...] = ()
    schema: str | None = None  # "module:attribute" of its pyarrow schema, resolved on use

    def resolved_schema(self) -> Any:
        if self.schema is None:
            return None
        module, _, attribute = self.schema.partition(":")
        return getattr(importlib.import_module(module), attribute)


def _table(name: str, layer: Layer, owner: str, description: str, **extra: Any) -> Entry:
    return Entry(name, layer, owner, description, **extra)


ENTRIES: tuple[Entry, ...] = (
    _table("posts", "raw", "collect", "one row per post or comment, authors pseudonymised",
           partitioning=("platform", "community", "month"), schema="edumine.schema:FILE_SCHEMA"),
    _table("quarantine", "raw", "collect", "records that could not be read, with reason and masked excerpt",
           schema="edumine.schema:QUARANTINE_SCHEMA"),
    _table("docs", "intermediate", "preprocess", "clean text, lemmas, token count, language, usable + reason",
           partitioning=("platform", "community", "month"), schema="edumine.tables:DOCS"),
    _table("docs_sources", "intermediate", "preprocess", "per posts partition: the posts file its docs were made "
           "from and the docs file (signatures), the settings and the docs' counts, so that the next run reads only changed partitions",
           schema="edumine.tables:DOCS_SOURCES"),
    _table("topics", "model_output", "topics", "per topic: label, top terms, size, label coverage",
           schema="edumine.tables:TOPICS"),
    _table("doc_topics", "model_output", "topics", "per doc: topic_id, probability, core, window",
           schema="edumine.tables:DOC_TOPICS"),
    _table("topic_prevalence", "model_output", "topics", "window x community x topic: docs, share, interval",
           schema="edumine.tables:TOPIC_PREVALENCE"),
    _table("topic_ids", "model_output", "topics", "stable topic ids across refits (registry)"),
    _table("topic_id_history", "model_output", "topics", "how each refit's topics map to stable ids"),
    _table("topic_updates", "model_output", "topics", "nightly updates since the last refit"),
    _table("topic_outlier_pool", "model_output", "topics", "new docs no topic took, pooled for new topics"),
    _table("topic_lineage", "model_output", "lineage", "edges between topics of consecutive windows",
           schema="edumine.tables:TOPIC_LINEAGE"),
    _table("topic_events", "model_output", "lineage", "emerged, persisted, grew, declined, faded, split, merged",
           schema="edumine.tables:TOPIC_EVENTS"),
    _table("lineage_windows", "model_output", "lineage", "per scope and window: docs and a fingerprint of their "
           "topics, so that the next run recomputes only the window pairs that changed",
           schema="edumine.tables:LINEAGE_WINDOWS"),
    _table("doc_themes", "model_output", "themes", "per doc: SDL themes and scores",
           schema="edumine.tables:DOC_THEMES"),
    _table("theme_prevalence", "model_output", "themes", "window x community x theme: share, interval, method",
           schema="edumine.tables:THEME_PREVALENCE"),
    _table("theme_windows", "model_output", "themes", "per window and community: docs and a fingerprint of their "
           "uids and what else the prevalence rows depend on, so that the next run recomputes only the groups "
           "that changed", schema="edumine.tables:THEME_WINDOWS"),
    _table("community_activity", "reporting", "metrics", "participation per window and community",
           schema="edumine.tables:COMMUNITY_ACTIVITY"),
    _table("activity_runs", "reporting", "metrics", "the collection runs (ingest_run) community_activity covers, "
           "so that the next run recomputes only the windows newer records change",
           schema="edumine.tables:ACTIVITY_RUNS"),
    _table("paper_table", "reporting", "paper_table", "participation laid out as in the replicated paper",
           schema="edumine.tables:PAPER_TABLE"),
    Entry("models/topics", "models", "topics", "saved topic models (<run_id>/, latest.json points at the last)",
          kind="artefact"),
    Entry("models/themes", "models", "themes", "trained SDL theme models (<classifier>-<hash>/, model card)",
          kind="artefact"),
    Entry("models/onnx", "models", "embeddings", "MiniLM exported to ONNX (int8), built once from local weights",
          kind="artefact"),
    Entry("models/static", "models", "embeddings", "static (model2vec) MiniLM word-piece vectors, built once "
          "from local weights", kind="artefact"),
    Entry("cache/embeddings", "intermediate", "topics", "document vectors by backend key, uid and text hash "
          "(topics and themes share them)", kind="artefact"),
    Entry("cache/texts", "intermediate", "themes", "theme classifiers' text vectors by text hash (labels, "
          "predict inputs)", kind="artefact"),
    Entry("_state", "state", "collect", "high-water marks of live sources; the files file sources read, with "
          "their signatures (miners/file_ledger.py)", kind="artefact"),
    Entry("runs", "reporting", "runner", "one manifest.json per run", kind="artefact"),
    Entry("summary.duckdb", "reporting", "store", "DuckDB summary store for analysts", kind="artefact"),
    Entry("report.html", "reporting", "report", "self-contained HTML report", kind="artefact"),
)
CATALOG: dict[str, Entry] = {entry.name: entry for entry in ENTRIES}


class UnknownTableError(KeyError):
    """A table that the catalog does not declare."""


def entry(name: str) -> Entry:
    try:
        return CATALOG[name]
    except KeyError:
        from edumine.registry import did_you_mean

        raise UnknownTableError(f"lake table {name!r} is not declared in edumine/catalog.py"
                                f"{did_you_mean(name, list(CATALOG))}; declare it there (layer, owner)") from None


def describe(root: Path) -> list[dict[str, Any]]:
    """One row per catalog entry: name, layer, owner, kind, present, and for what is present its size (bytes,
    mb); for tables also files and rows (from the Parquet footers, so it is fast on a large lake)."""
    import pyarrow.parquet as pq

    rows = []
    for item in ENTRIES:
        path = root / item.name
        row: dict[str, Any] = {"name": item.name, "layer": item.layer, "owner": item.owner, "kind": item.kind,
                               "present": path.exists(), "files": None, "rows": None, "mb": None, "bytes": None}
        if item.kind == "table" and path.is_dir():
            files = [f for f in path.rglob("*.parquet") if not f.name.startswith(".")]
            row["files"] = len(files)
            row["rows"] = sum(_footer_rows(pq, item.name, f) for f in files)
            row["bytes"] = sum(f.stat().st_size for f in files)
        elif path.is_file():
            row["bytes"] = path.stat().st_size
        elif path.is_dir():
            row["bytes"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if row["bytes"] is not None:
            row["mb"] = round(row["bytes"] / 2**20, 2)
        rows.append(row)
    return rows


def _footer_rows(pq: Any, name: str, path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # noqa: BLE001  (pyarrow raises several kinds for a damaged file)
        from edumine.integrity import CorruptTable

        raise CorruptTable(name, path, f"{type(exc).__name__}: {exc}") from None
