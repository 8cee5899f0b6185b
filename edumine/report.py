"""``<lake>/report.html``: one self-contained page that shows what changed, for researchers.

Plotly's JavaScript is inlined, so the page opens without a network. Sections: provenance (the run's
config hash, code version, coverage, quarantined counts, model scores), activity and participation,
topic prevalence over time, topic lineage (Sankey, events marked), theme prevalence, topics x themes and
the most discussed threads. A section whose tables are missing says so (and which stage makes them)
instead of failing. Every text that comes from the data is HTML-escaped: a post titled ``<script>``
shows those characters. Inside a Prefect flow run the run summary is also published as artifacts.
"""

from __future__ import annotations

import html
import json
import logging
import numbers
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edumine.faults import kill_point
from edumine.report_charts import (activity_figure, heatmap_figure, lineage_figure, people_figure,
                                   prevalence_figure, rates_figure)
from edumine.schema import UTC

log = logging.getLogger(__name__)


def esc(value: Any) -> str:
    """Text for HTML (content and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


REPORT_FILE = "report.html"
WINDOW_COLUMNS = ("window_label", "window_start")
LOW_COLUMNS = ("share_low", "low", "ci_low", "lower", "share_lower")
HIGH_COLUMNS = ("share_high", "high", "ci_high", "upper", "share_upper")
TOPIC_COLUMNS = ("topic_id", "label", "top_terms", "size", "share", "representative_docs")
MAKERS = {"community_activity": "metrics", "topics": "topics", "topic_prevalence": "topics",
          "doc_topics": "topics", "topic_lineage": "lineage", "topic_events": "lineage",
          "theme_prevalence": "themes", "doc_themes": "themes", "posts": "collect"}


@dataclass
class Section:
    key: str
    title: str
    body: str
    status: str = "ok"  # ok | missing | error


class Charts:
    """Figures embedded as JSON data blocks, drawn by one loader script at the end of the page."""

    def __init__(self) -> None:
        self.count = 0

    def embed(self, fig: Any) -> str:
        self.count += 1
        chart_id = f"chart-{self.count}"
        data = fig.to_json().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return (f'<div class="chart" id="{chart_id}"></div>'
                f'<script type="application/json" data-figure="{chart_id}">{data}</script>')


def latest_manifest(lake_root: Path) -> dict[str, Any] | None:
    paths = sorted(Path(lake_root).glob("runs/*/manifest.json"))
    for path in reversed(paths):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def _pick(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in columns), None)


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


def _missing(*names: str) -> str:
    stages = sorted({MAKERS.get(n, "?") for n in names})
    return (f'<p class="missing">Not available: no {", ".join(f"<code>{esc(n)}</code>" for n in names)} table in '
            f"this lake. The {', '.join(esc(s) for s in stages)} stage makes it: enable it and run "
            "<code>edumine run</code> again.</p>")


def _cell(value: Any, floats: str, max_chars: int) -> str:
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{value}</td>"
    if isinstance(value, numbers.Integral):
        return f'<td class="num">{int(value):,}</td>'
    if isinstance(value, numbers.Real):
        return f'<td class="num">{"" if pd.isna(value) else floats.format(float(value))}</td>'
    if value is None or value is pd.NaT:
        return "<td></td>"
    if isinstance(value, (list, tuple, np.ndarray)):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return f"<td>{esc(text)}</td>"


def html_table(frame: pd.DataFrame, *, limit: int = 200, floats: str = "{:.3f}", max_chars: int = 300) -> str:
    """An escaped HTML table (at most ``limit`` rows, with a note when cut; long texts shortened)."""
    if frame.empty:
        return '<p class="missing">No rows.</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = ["<tr>" + "".join(_cell(v, floats, max_chars) for v in record) + "</tr>"
            for record in frame.head(limit).itertuples(index=False)]
    note = f'<p class="note">First {limit:,} of {len(frame):,} rows.</p>' if len(frame) > limit else ""
    return (f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
            f"{note}")


# -- sections ------------------------------------------------------------------------------------------
def provenance_section(data: Data, manifest: dict[str, Any] | None) -> Section:
    parts = []
    if manifest is None:
        parts.append('<p class="missing">No run manifest in this lake (<code>runs/*/manifest.json</code>).</p>')
    else:
        code = manifest.get("code_version") or {}
        run = pd.DataFrame([
            ("run", manifest.get("run_id")), ("flow", manifest.get("flow")), ("status", manifest.get("status")),
            ("started", manifest.get("started_at")), ("config hash", manifest.get("config_hash")),
            ("window unit", ((manifest.get("config") or {}).get("windows") or {}).get("unit")),
            ("edumine", code.get("edumine")),
            ("git commit", (code.get("git_commit") or "")[:12]
             + (" (uncommitted changes)" if code.get("git_dirty") else "")),
            ("pseudonym key id", manifest.get("pseudonym_key_id")),
        ], columns=["", "value"])
        parts.append(html_table(run))
        inputs = pd.DataFrame([{k: item.get(k) for k in ("label", "kind", "records", "added", "updated", "duplicates",
                                                          "filtered", "quarantined_total")}
                               for item in manifest.get("inputs") or []])
        parts.append("<h3>Inputs of this run</h3>" + (html_table(inputs) if not inputs.empty else
                                                      '<p class="missing">This run read no source.</p>'))
        scores = _flatten(manifest.get("scores") or {})
        parts.append("<h3>Model scores</h3>" + (html_table(pd.DataFrame(scores, columns=["score", "value"]))
                                                if scores else '<p class="missing">No model scores in this run '
                                                               "(the topic and theme stages record them).</p>"))
    if data.has("posts"):
        coverage = data.frame(
            "SELECT platform, community, count(*) FILTER (WHERE kind = 'post') AS posts, "
            "count(*) FILTER (WHERE kind = 'comment') AS comments, count(*) FILTER (WHERE author IS NULL) "
            "AS unknown_author, strftime(min(created_at), '%Y-%m-%d') AS first, "
            "strftime(max(created_at), '%Y-%m-%d') AS last FROM posts GROUP BY ALL ORDER BY 1, 2")
        parts.append("<h3>Data coverage (the whole lake)</h3>" + html_table(coverage))
    else:
        parts.append("<h3>Data coverage</h3>" + _missing("posts"))
    if data.has("quarantine"):
        quarantine = data.frame("SELECT source, reason, count(*) AS records, count(DISTINCT run_id) AS runs "
                                "FROM quarantine GROUP BY ALL ORDER BY 3 DESC")
        parts.append("<h3>Quarantined records (all runs)</h3>" + html_table(quarantine))
    else:
        parts.append("<h3>Quarantined records</h3><p>None: every record read so far was usable.</p>")
    return Section("provenance", "Provenance", "".join(parts))


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for key, inner in value.items() for item in _flatten(inner, f"{prefix}{key}.")]
    if isinstance(value, list) and len(value) > 8:
        value = f"{len(value)} values"
    return [(prefix.rstrip("."), value if isinstance(value, (int, float)) and not isinstance(value, bool)
             else json.dumps(value, default=str))]


def activity_section(data: Data, charts: Charts) -> tuple[Section, pd.DataFrame | None]:
    if not data.has("community_activity"):
        return Section("activity", "Activity and participation", _missing("community_activity"), "missing"), None
    activity = data.frame("SELECT * FROM community_activity ORDER BY window_start, platform, community")
    body = (charts.embed(activity_figure(activity)) + charts.embed(people_figure(activity))
            + charts.embed(rates_figure(activity))
            + "<h3>Metrics per window and community</h3>"
            + '<p class="note">Definitions: docs/metrics.md. Unknown (deleted) authors are never counted as people.</p>'
            + html_table(activity.assign(window_start=activity["window_start"].astype(str))))
    return Section("activity", "Activity and participation", body), activity


def _topic_labels(data: Data) -> tuple[dict[Any, str], pd.DataFrame | None]:
    if not data.has("topics"):
        return {}, None
    columns = data.columns("topics")
    topics = data.frame("SELECT * FROM topics")
    label = _pick(columns, ("label", "name", "topic_label"))
    labels: dict[Any, str] = {}
    if "topic_id" in columns:
        for topic, text in zip(topics["topic_id"], topics[label] if label else topics["topic_id"]):
            labels.setdefault(topic, f"{topic}: {text}" if label else str(text))
    return labels, topics


def _prevalence(data: Data, table: str, series: str, limit: int, *, counts: tuple[str, ...] = ("docs",),
                where: str = "TRUE") -> pd.DataFrame:
    """window, community, <series>, share, docs (of the series), low, high for the ``limit`` largest series."""
    columns = data.columns(table)
    window = _pick(columns, WINDOW_COLUMNS)
    low, high = _pick(columns, LOW_COLUMNS), _pick(columns, HIGH_COLUMNS)
    community = "community" if "community" in columns else "'all'"
    count = _pick(columns, counts)
    docs = f'"{count}"' if count else "NULL"
    select = (f'SELECT CAST("{window}" AS VARCHAR) AS window_label, {community} AS community, "{series}" AS series, '
              f"share, {docs} AS docs"
              + (f', "{low}" AS low, "{high}" AS high' if low and high else "") + f' FROM "{table}" WHERE {where}')
    frame = data.frame(select)
    top = frame.groupby("series")["docs" if count else "share"].sum().nlargest(limit).index
    frame = frame[frame["series"].isin(top)].sort_values(["series", "community", "window_label"])
    return frame.rename(columns={"series": series})


def topics_section(data: Data, charts: Charts, labels: dict[Any, str], topics: pd.DataFrame | None,
                   limit: int) -> Section:
    parts = []
    if data.has("topic_prevalence"):
        frame = _prevalence(data, "topic_prevalence", "topic_id", limit, counts=("topic_docs", "docs"),
                            where="topic_id >= 0")  # -1: outliers of the topic model
        parts.append(charts.embed(prevalence_figure(frame, series="topic_id", labels=labels,
                                                    title=f"Topic prevalence per window (top {limit} topics)")))
    else:
        parts.append(_missing("topic_prevalence"))
    if topics is not None:
        shown = [c for c in TOPIC_COLUMNS if c in topics.columns] or list(topics.columns)
        parts.append("<h3>Topics</h3>" + html_table(topics[shown].sort_values(shown[0]), limit=100))
    status = "ok" if data.has("topic_prevalence") else "missing"
    return Section("topics", "Topic prevalence over time", "".join(parts), status)


def lineage_section(data: Data, charts: Charts, labels: dict[Any, str]) -> Section:
    if not data.has("topic_lineage"):
        return Section("lineage", "Topic lineage", _missing("topic_lineage", "topic_events"), "missing")
    community = ", community" if "community" in data.columns("topic_lineage") else ""
    lineage = data.frame('SELECT CAST(from_window AS VARCHAR) AS from_window, from_topic, '
                         f'CAST(to_window AS VARCHAR) AS to_window, to_topic, similarity{community} FROM topic_lineage')
    events = None
    parts = []
    if data.has("topic_events"):
        columns = data.columns("topic_events")
        window = _pick(columns, WINDOW_COLUMNS)
        events = data.frame(f'SELECT * EXCLUDE ("{window}"), CAST("{window}" AS VARCHAR) AS window_label FROM topic_events')
    if lineage.empty:
        parts.append('<p class="missing">The lineage table is empty (one window only, or no topic carried over).</p>')
    else:
        parts.append(charts.embed(lineage_figure(lineage, events, labels)))
    if events is not None and "community" in events and (events["community"] == "all").any():
        # The chart has a menu per community; the tables count the whole corpus once, not once per community.
        events = events[events["community"] == "all"]
    if events is not None:
        counts = events.groupby(["window_label", "event"]).size().unstack(fill_value=0).reset_index()
        parts.append("<h3>Events per window</h3>" + html_table(counts))
        detail = events.assign(topic=[labels.get(t, t) for t in events["topic_id"]])
        parts.append("<h3>Events</h3>" + html_table(detail.sort_values(["window_label", "event"]), limit=150))
    else:
        parts.append(_missing("topic_events"))
    return Section("lineage", "Topic lineage", "".join(parts))


def themes_section(data: Data, charts: Charts, limit: int) -> Section:
    if not data.has("theme_prevalence"):
        return Section("themes", "Theme prevalence over time", _missing("theme_prevalence"), "missing")
    columns = data.columns("theme_prevalence")
    column = _pick(columns, ("theme", "theme_id", "label"))
    labels: dict[Any, str] = {}
    if "theme_label" in columns and column != "theme_label":
        labels = dict(data.con.execute(f'SELECT DISTINCT "{column}", theme_label FROM theme_prevalence').fetchall())
    frame = _prevalence(data, "theme_prevalence", column, limit, counts=("theme_docs", "docs"))
    figure = prevalence_figure(frame.rename(columns={column: "theme"}), series="theme", labels=labels,
                               title="Theme prevalence per window")
    return Section("themes", "Theme prevalence over time", charts.embed(figure))


def topic_theme_counts(data: Data) -> pd.DataFrame:
    """Documents per topic x theme, from doc_topics and doc_themes (a list of themes or one theme per row)."""
    types = {row[0]: str(row[1]) for row in data.con.execute("DESCRIBE SELECT * FROM doc_themes").fetchall()}
    columns = list(types)
    if types.get("themes", "").endswith("[]"):
        themes = "SELECT DISTINCT uid, unnest(themes) AS theme FROM doc_themes"
    else:
        column = _pick(columns, ("theme", "themes", "label"))
        themes = f'SELECT DISTINCT uid, CAST("{column}" AS VARCHAR) AS theme FROM doc_themes'
    return data.frame(f"WITH t AS ({themes}) SELECT d.topic_id, t.theme, count(DISTINCT d.uid) AS docs "
                      "FROM doc_topics d JOIN t USING (uid) WHERE t.theme IS NOT NULL AND d.topic_id >= 0 "
                      "GROUP BY ALL")


def crosstab_section(data: Data, charts: Charts, labels: dict[Any, str]) -> Section:
    missing = [n for n in ("doc_topics", "doc_themes") if not data.has(n)]
    if missing:
        return Section("crosstab", "Topics × themes", _missing(*missing), "missing")
    counts = topic_theme_counts(data)
    if counts.empty:
        return Section("crosstab", "Topics × themes",
                       '<p class="missing">No document has both a topic and a theme.</p>', "missing")
    return Section("crosstab", "Topics × themes", charts.embed(heatmap_figure(counts, labels)))


def threads_section(data: Data, limit: int = 15) -> Section:
    if not data.has("posts"):
        return Section("threads", "Most discussed threads", _missing("posts"), "missing")
    top = data.frame(
        "WITH c AS (SELECT thread_uid, count(*) AS comments_in_lake FROM posts WHERE kind = 'comment' GROUP BY 1) "
        "SELECT p.community, strftime(p.created_at, '%Y-%m-%d') AS day, coalesce(p.title, '[deleted]') AS title, "
        "c.comments_in_lake, p.score, p.url FROM posts p JOIN c ON c.thread_uid = p.uid WHERE p.kind = 'post' "
        f"ORDER BY c.comments_in_lake DESC, p.created_at LIMIT {int(limit)}")
    if top.empty:
        return Section("threads", "Most discussed threads",
                       '<p class="missing">No thread has comments in the lake.</p>', "missing")
    top["title"] = [html.unescape(t) for t in top["title"]]  # Reddit's own &amp; entities; esc() re-escapes
    return Section("threads", "Most discussed threads", html_table(top))


# -- the page ------------------------------------------------------------------------------------------
def build_report(lake_root: str | Path, *, manifest: dict[str, Any] | None = None, out: str | Path | None = None,
                 max_series: int = 10) -> dict[str, Any]:
    """Write the report (default ``<lake>/report.html``) atomically; returns its path and section statuses."""
    root = Path(lake_root)
    manifest = manifest if manifest is not None else latest_manifest(root)
    target = Path(out) if out is not None else root / REPORT_FILE
    data = Data(root)
    charts = Charts()
    sections: list[Section] = []
    activity = None
    try:
        labels, topics = _guard("topics", lambda: _topic_labels(data), ({}, None))
        sections.append(_guard_section("provenance", "Provenance", lambda: provenance_section(data, manifest)))
        result = _guard("activity", lambda: activity_section(data, charts), None)
        if result is None:
            sections.append(Section("activity", "Activity and participation",
                                    '<p class="missing">This section failed to build; see the run log.</p>', "error"))
        else:
            sections.append(result[0])
            activity = result[1]
        sections.append(_guard_section("topics", "Topic prevalence over time",
                                       lambda: topics_section(data, charts, labels, topics, max_series)))
        sections.append(_guard_section("lineage", "Topic lineage", lambda: lineage_section(data, charts, labels)))
        sections.append(_guard_section("themes", "Theme prevalence over time",
                                       lambda: themes_section(data, charts, max_series)))
        sections.append(_guard_section("crosstab", "Topics × themes", lambda: crosstab_section(data, charts, labels)))
        sections.append(_guard_section("threads", "Most discussed threads", lambda: threads_section(data)))
        from edumine.report_paper import paper_sections  # the replication table (issue 15), when configured
        sections.extend(_guard("paper_table", lambda: paper_sections(data, manifest), []))
    finally:
        data.close()
    page = render_page(sections, manifest, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}"
    try:
        tmp.write_text(page, encoding="utf-8")
        kill_point("report.write")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    summary = {"path": str(target), "bytes": len(page.encode("utf-8")), "charts": charts.count,
               "sections": {s.key: s.status for s in sections}}
    summary["prefect_artifacts"] = publish_artifacts(summary, manifest, activity)
    return summary


def _guard(name: str, build: Any, default: Any) -> Any:
    try:
        return build()
    except Exception:  # noqa: BLE001  (one broken section must not cost the whole report)
        log.exception("report section %s failed", name)
        return default


def _guard_section(key: str, title: str, build: Any) -> Section:
    fallback = Section(key, title, f'<p class="missing">This section failed to build from the lake\'s '
                                   f"<code>{esc(key)}</code> tables; the run log has the error.</p>", "error")
    return _guard(key, build, fallback)


def render_page(sections: list[Section], manifest: dict[str, Any] | None, root: Path) -> str:
    from plotly.offline import get_plotlyjs

    from edumine.report_template import LOADER, PAGE, STYLE

    run_id = (manifest or {}).get("run_id", "no run")
    nav = "".join(f'<a href="#{s.key}" class="s-{s.status}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.key}" data-status="{s.status}"><h2>{esc(s.title)}</h2>{s.body}</section>'
                   for s in sections)
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return PAGE.format(style=STYLE, plotly=plotly_js, loader=LOADER, nav=nav, body=body, run=esc(run_id),
                       config_hash=esc((manifest or {}).get("config_hash", "")), lake=esc(root),
                       generated=esc(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")))


# -- Prefect -------------------------------------------------------------------------------------------
def publish_artifacts(summary: dict[str, Any], manifest: dict[str, Any] | None,
                      activity: pd.DataFrame | None) -> list[str]:
    """Markdown and table artifacts for the Prefect UI; nothing (an empty list) outside a Prefect run."""
    if "prefect" not in sys.modules:
        return []
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return []
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    created = [str(create_markdown_artifact(markdown=run_markdown(summary, manifest), key="edumine-run-summary",
                                            description="edumine run summary"))]
    if activity is not None and not activity.empty:
        rows = json.loads(activity.assign(window_start=activity["window_start"].astype(str))
                          .to_json(orient="records"))
        created.append(str(create_table_artifact(table=rows, key="edumine-community-activity",
                                                 description="participation metrics per window and community")))
    return created


def run_markdown(summary: dict[str, Any], manifest: dict[str, Any] | None) -> str:
    manifest = manifest or {}
    totals = manifest.get("totals") or {}
    lines = [f"# edumine run `{manifest.get('run_id', '?')}`", "",
             f"- config hash: `{manifest.get('config_hash', '?')}`",
             f"- records read: {totals.get('records', 0):,}; added {totals.get('added', 0):,}; "
             f"quarantined {totals.get('quarantined_total', 0):,}",
             f"- report: `{summary['path']}` ({summary['charts']} charts)", "", "| section | status |", "|---|---|"]
    lines += [f"| {key} | {status} |" for key, status in summary["sections"].items()]
    scores = _flatten(manifest.get("scores") or {})
    if scores:
        lines += ["", "| score | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in scores]
    return "\n".join(lines)
