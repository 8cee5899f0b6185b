"""What the report reads: the lake and summary store through the read-only query layer, shaped into plain
frames (prevalence per window with its window size, topics with readable labels, themes with reliability).

Everything here is an aggregate (topic / theme / window tables, a few representative texts), so the page's
size does not grow with the number of documents.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edumine.report.html import short

log = logging.getLogger(__name__)

ALL = "all"  # the scope of the whole corpus (every community together)
# Prevalence tables: (series column, the series' docs, the window's docs in that community), as the catalog
# declares them (edumine/tables.py).
PREVALENCE = {"topic_prevalence": ("topic_id", "docs", "total_docs"),
              "theme_prevalence": ("theme", "theme_docs", "docs")}


class ReportDataError(ValueError):
    """A lake table lacks columns that the catalog declares (written by an older edumine)."""


def latest_manifest(lake_root: Path) -> dict[str, Any] | None:
    """The manifest of the run that started last (run ids sort by second only; two runs can share one)."""
    manifests = []
    for path in Path(lake_root).glob("runs/*/manifest.json"):
        try:
            manifests.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return max(manifests, key=lambda m: (str(m.get("started_at") or ""), str(m.get("run_id") or "")), default=None)


class Data:
    """The lake and summary store through the read-only query layer. Tables are read by the columns the
    catalog declares for them (``edumine/catalog.py``), never by guessing."""

    def __init__(self, lake_root: Path) -> None:
        from edumine.query import connect

        self.con = connect(lake_root)
        self.names = {row[0] for row in self.con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}

    def has(self, name: str) -> bool:
        return name in self.names

    def columns(self, name: str) -> list[str]:
        """The catalog's columns of ``name`` (its schema, then its partition columns)."""
        from edumine.catalog import entry

        item = entry(name)
        schema = item.resolved_schema()
        if schema is None:
            raise ReportDataError(f"lake table {name!r} has no schema in edumine/catalog.py; the report reads "
                                  "only declared columns")
        return list(schema.names) + [p for p in item.partitioning if p not in schema.names]

    def require(self, name: str, columns: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """``columns`` (default: all the catalog's) of ``name``, checked against the catalog and the lake."""
        from edumine.catalog import entry

        declared = self.columns(name)
        wanted = list(columns) if columns is not None else declared
        undeclared = [c for c in wanted if c not in declared]
        if undeclared:
            raise ReportDataError(f"the report asks {name!r} for {undeclared}, which edumine/catalog.py does not "
                                  "declare")
        present = {row[0] for row in self.con.execute(f'DESCRIBE SELECT * FROM "{name}"').fetchall()}
        absent = [c for c in wanted if c not in present]
        if absent:
            raise ReportDataError(f"lake table {name!r} lacks the column(s) {absent} that edumine/catalog.py "
                                  f"declares: an older edumine wrote it. Run `edumine migrate --lake DIR`, or the "
                                  f"{entry(name).owner} stage again (edumine run)")
        return wanted

    def table(self, name: str, columns: list[str] | tuple[str, ...] | None = None, order: str = "") -> pd.DataFrame:
        """``SELECT <columns> FROM name``: the catalog's columns, exactly."""
        wanted = self.require(name, columns)
        listed = ", ".join(f'"{c}"' for c in wanted)
        return self.frame(f'SELECT {listed} FROM "{name}"' + (f" ORDER BY {order}" if order else ""))

    def frame(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def close(self) -> None:
        self.con.close()


def share_intervals(hits: np.ndarray, totals: np.ndarray, chunk: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """The stages' seeded bootstrap interval, in chunks so that memory stays small for many rows."""
    from edumine.stats import bootstrap_share_interval

    lows, highs = [], []
    for begin in range(0, len(hits), chunk):
        low, high = bootstrap_share_interval(hits[begin:begin + chunk], totals[begin:begin + chunk])
        lows.append(low)
        highs.append(high)
    if not lows:
        return np.array([]), np.array([])
    return np.concatenate(lows), np.concatenate(highs)


def prevalence(data: Data, table: str) -> pd.DataFrame:
    """window_label, window_start, community, <series>, hits, total, share, low, high of ``table``
    (``topic_prevalence`` or ``theme_prevalence``).

    ``total`` is the window's size in that community (all usable docs), ``hits`` the series' docs. Topic
    tables name them ``docs`` / ``total_docs``, theme tables ``theme_docs`` / ``docs``.
    """
    series, hits, total = PREVALENCE[table]
    data.require(table, ["window_label", "window_start", "community", series, hits, total, "share", "share_low",
                         "share_high"])
    frame = data.frame(f'SELECT window_label, CAST(window_start AS VARCHAR) AS window_start, community, "{series}", '
                       f'share, "{hits}" AS hits, "{total}" AS total, share_low AS low, share_high AS high '
                       f'FROM "{table}"')
    for column in ("hits", "total"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def with_all_scope(frame: pd.DataFrame, series: str, keep: Any = None) -> pd.DataFrame:
    """``frame`` plus one ``community == 'all'`` row per window and series (docs summed over communities,
    interval from the same seeded bootstrap), for the series in ``keep`` (all when None)."""
    if frame.empty or (frame["community"] == ALL).any():
        return frame
    rows = frame if keep is None else frame[frame[series].isin(keep)]
    totals = (frame.drop_duplicates(["window_label", "community"])
              .groupby(["window_label", "window_start"])["total"].sum().rename("total"))
    hits = rows.groupby(["window_label", "window_start", series])["hits"].sum().rename("hits").reset_index()
    hits = hits.merge(totals.reset_index(), on=["window_label", "window_start"])
    hits["share"] = np.divide(hits["hits"], hits["total"], out=np.zeros(len(hits)), where=hits["total"] > 0)
    low, high = share_intervals(hits["hits"].to_numpy(np.int64), hits["total"].to_numpy(np.int64))
    hits["low"], hits["high"], hits["community"] = low, high, ALL
    return pd.concat([hits, frame], ignore_index=True)


def window_sizes(frame: pd.DataFrame) -> pd.DataFrame:
    """window_label, window_start, community, total: one row per window and community."""
    return frame.drop_duplicates(["window_label", "community"])[["window_label", "window_start", "community",
                                                                   "total"]]


def _texts(value: Any) -> list[str]:
    """A list column's value (None or NaN when the row has none) as a list of strings."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [str(v) for v in value]


def topic_info(data: Data, catch_all_coverage: float) -> pd.DataFrame:
    """One row per topic: topic_id, terms (list), title (a short representative text), name (terms + title,
    one line), docs (list of representative texts), size, coverage and catch_all (label_coverage under the
    floor: a cluster of short or unrelated posts whose label few of its posts use)."""
    if not data.has("topics"):
        return pd.DataFrame(columns=["topic_id", "terms", "title", "name", "docs", "size", "coverage", "catch_all"])
    topics = data.table("topics", ["topic_id", "label", "top_terms", "size", "label_coverage", "representative_docs"])
    rows = []
    for record in topics.to_dict("records"):
        terms = _texts(record["top_terms"])[:4]
        docs = _texts(record["representative_docs"])
        title = short(docs[0] if docs else "", 70)
        coverage = record["label_coverage"]
        coverage = None if coverage is None or pd.isna(coverage) else float(coverage)
        rows.append({"topic_id": int(record["topic_id"]), "terms": terms, "title": title,
                     "name": ", ".join(terms) or str(record["label"] or record["topic_id"]), "docs": docs[:3],
                     "size": record["size"], "coverage": coverage,
                     "catch_all": coverage is not None and coverage < catch_all_coverage})
    return pd.DataFrame(rows)


def theme_reliability(data: Data, manifest: dict[str, Any] | None, floor: float | None) -> pd.DataFrame:
    """theme, label, f1, method, reliable: the themes stage's columns of ``theme_prevalence`` (the theme's
    cross-validated F1, the estimation method, and f1 >= the run's ``themes.reliability_floor``)."""
    manifest = manifest or {}
    config_floor = ((manifest.get("config") or {}).get("themes") or {}).get("reliability_floor")
    floor = floor if floor is not None else (config_floor if config_floor is not None else 0.5)
    if not data.has("theme_prevalence"):
        return pd.DataFrame(columns=["theme", "label", "f1", "method", "reliable"])
    data.require("theme_prevalence", ["theme", "theme_label", "f1", "method", "reliable"])
    frame = data.frame("SELECT DISTINCT theme, theme_label AS label, f1, method, reliable FROM theme_prevalence "
                       "ORDER BY theme")
    frame = frame.drop_duplicates("theme")
    frame.attrs["floor"] = floor
    return frame.reset_index(drop=True)


def run_scores(manifest: dict[str, Any] | None) -> dict[str, Any]:
    return dict((manifest or {}).get("scores") or {})
