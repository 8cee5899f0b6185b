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

WINDOW_COLUMNS = ("window_label", "window_start")
LOW_COLUMNS = ("share_low", "low", "ci_low", "lower", "share_lower")
HIGH_COLUMNS = ("share_high", "high", "ci_high", "upper", "share_upper")
ALL = "all"  # the scope of the whole corpus (every community together)


def pick(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in columns), None)


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
    """The lake and summary store through the read-only query layer."""

    def __init__(self, lake_root: Path) -> None:
        from edumine.query import connect

        self.con = connect(lake_root)
        self.names = {row[0] for row in self.con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}

    def has(self, name: str) -> bool:
        return name in self.names

    def columns(self, name: str) -> list[str]:
        return [row[0] for row in self.con.execute(f'DESCRIBE SELECT * FROM "{name}"').fetchall()]

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


def prevalence(data: Data, table: str, series: str) -> pd.DataFrame:
    """window_label, window_start, community, <series>, hits, total, share, low, high of ``table``.

    ``total`` is the window's size in that community (all usable docs), ``hits`` the series' docs. Topic
    tables name them ``docs`` / ``total_docs``, theme tables ``theme_docs`` / ``docs``.
    """
    columns = data.columns(table)
    label = pick(columns, ("window_label", "window")) or "window_start"
    start = "window_start" if "window_start" in columns else label
    hits = pick(columns, (f"{series.split('_')[0]}_docs", "docs"))
    total = pick(columns, ("total_docs", "window_docs")) or ("docs" if hits != "docs" else None)
    low, high = pick(columns, LOW_COLUMNS), pick(columns, HIGH_COLUMNS)
    community = "community" if "community" in columns else f"'{ALL}'"
    select = (f'SELECT CAST("{label}" AS VARCHAR) AS window_label, CAST("{start}" AS VARCHAR) AS window_start, '
              f'CAST({community} AS VARCHAR) AS community, "{series}" AS series, share, '
              + (f'"{hits}"' if hits else "NULL") + " AS hits, " + (f'"{total}"' if total else "NULL") + " AS total, "
              + (f'"{low}" AS low, "{high}" AS high' if low and high else "NULL AS low, NULL AS high")
              + f' FROM "{table}"')
    frame = data.frame(select)
    if total is None:  # shares of one series per doc add to one: the window's size is the sum
        frame["total"] = frame.groupby(["window_label", "community"])["hits"].transform("sum")
    for column in ("hits", "total"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.rename(columns={"series": series})


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


def _terms(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.replace(",", " ").split() if t.strip()]
    return [str(v) for v in value]


def _first(value: Any) -> str:
    if value is None or isinstance(value, float):
        return ""
    if isinstance(value, str):
        return value
    items = list(value)
    return str(items[0]) if items else ""


def topic_info(data: Data, catch_all_coverage: float) -> pd.DataFrame:
    """One row per topic: topic_id, terms (list), title (a short representative text), name (terms + title,
    one line), docs (list of representative texts), size, coverage and catch_all (label_coverage under the
    floor: a cluster of short or unrelated posts whose label few of its posts use)."""
    if not data.has("topics"):
        return pd.DataFrame(columns=["topic_id", "terms", "title", "name", "docs", "size", "coverage", "catch_all"])
    topics = data.frame("SELECT * FROM topics")
    terms_column = pick(list(topics.columns), ("top_terms", "terms", "label", "name"))
    rows = []
    for record in topics.to_dict("records"):
        terms = _terms(record.get(terms_column))[:4] if terms_column else []
        docs = record.get("representative_docs")
        docs = [] if docs is None or isinstance(docs, float) else [str(d) for d in docs]
        title = short(_first(docs), 70)
        coverage = record.get("label_coverage")
        coverage = None if coverage is None or pd.isna(coverage) else float(coverage)
        rows.append({"topic_id": int(record["topic_id"]), "terms": terms, "title": title,
                     "name": ", ".join(terms) or str(record.get("label") or record["topic_id"]), "docs": docs[:3],
                     "size": record.get("size"), "coverage": coverage,
                     "catch_all": coverage is not None and coverage < catch_all_coverage})
    return pd.DataFrame(rows)


def theme_reliability(data: Data, manifest: dict[str, Any] | None, floor: float | None) -> pd.DataFrame:
    """theme, label, f1, method, reliable: from ``theme_prevalence`` (the themes stage's ``reliable`` / ``f1``
    / ``method`` columns) when it has them, else from the run's scores (cross-validated F1 per theme)."""
    manifest = manifest or {}
    config_floor = ((manifest.get("config") or {}).get("themes") or {}).get("reliability_floor")
    floor = floor if floor is not None else (config_floor if config_floor is not None else 0.5)
    columns = data.columns("theme_prevalence") if data.has("theme_prevalence") else []
    theme = pick(columns, ("theme", "theme_id", "label"))
    if theme is None:
        return pd.DataFrame(columns=["theme", "label", "f1", "method", "reliable"])
    label = "theme_label" if "theme_label" in columns else theme
    extra = [c for c in ("f1", "method", "reliable") if c in columns]
    frame = data.frame(f'SELECT DISTINCT "{theme}" AS theme, "{label}" AS label'
                       + "".join(f', "{c}" AS {c}' for c in extra) + " FROM theme_prevalence")
    frame = frame.drop_duplicates("theme")
    scores = ((manifest.get("scores") or {}).get("themes") or {}).get("cv_per_theme_f1") or {}
    if "f1" not in frame:
        frame["f1"] = [scores.get(t) for t in frame["theme"]]
    if "method" not in frame:
        frame["method"] = ((manifest.get("scores") or {}).get("themes") or {}).get("model")
    if "reliable" not in frame:
        frame["reliable"] = [None if f is None or pd.isna(f) else bool(f >= floor) for f in frame["f1"]]
    frame.attrs["floor"] = floor
    return frame.reset_index(drop=True)


def run_scores(manifest: dict[str, Any] | None) -> dict[str, Any]:
    return dict((manifest or {}).get("scores") or {})
