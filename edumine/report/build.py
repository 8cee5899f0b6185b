"""``<lake>/report.html``: one self-contained page that shows what changed, for researchers.

Plotly's JavaScript is inlined, so the page opens without a network. Sections: provenance (the run's final
status, config hash, code version, inputs and their counts, coverage, quarantined records), how much to trust
this (model scores, one sentence each), activity and participation, topic prevalence, topic lineage (the most
changing topics as a timeline, split / merge families), topic details, theme prevalence, topics x themes and
the most discussed threads. Built from aggregate tables only, so its size does not grow with the corpus.
A section whose tables are missing says so (and which stage makes them) instead of failing. Every text that
comes from the data is HTML-escaped. Inside a Prefect flow run the run summary is also published as artifacts.

The report stage runs before the run closes; ``refresh_provenance`` (called by the runner once the final
manifest is written) rewrites the provenance block and the header with the run's final status.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from edumine.faults import kill_point
from edumine.report.charts import lineage_figure
from edumine.report.data import Data, latest_manifest, prevalence, topic_info, with_all_scope
from edumine.report.html import Charts, Section, esc, html_table, missing
from edumine.report.lineage import EVENT_COLUMNS, lineage_view, normalise_events
from edumine.report.quality import trust_section_body
from edumine.report.sections import (ReportSettings, activity_section, crosstab_section, flatten, provenance_body,
                                     provenance_section, themes_quality, themes_section, threads_section,
                                     topics_section)
from edumine.report.topics import detail_blocks
from edumine.schema import UTC

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
__all__ = ["REPORT_FILE", "ReportSettings", "build_report", "latest_manifest", "publish_artifacts",
           "refresh_provenance", "run_markdown"]


def lineage_section(data: Data, charts: Charts, topics: pd.DataFrame,
                    settings: ReportSettings) -> tuple[Section, Section]:
    """The lineage view and the topic details it links to."""
    title = "Topic lineage: what changed"
    if not data.has("topic_events"):
        return (Section("lineage", title, missing("topic_lineage", "topic_events"), "missing"),
                Section("topic-details", "Topic details", missing("topic_events"), "missing"))
    events = normalise_events(data.table("topic_events", EVENT_COLUMNS))
    lineage = None
    if data.has("topic_lineage"):
        lineage = data.table("topic_lineage", ["community", "from_window", "from_topic", "to_window", "to_topic",
                                               "similarity"])
    shares = pd.DataFrame(columns=["window_label", "window_start", "community", "topic_id", "hits", "total", "share",
                                   "low", "high"])
    if data.has("topic_prevalence"):
        shares = prevalence(data, "topic_prevalence")
        shares = with_all_scope(shares[shares["topic_id"] >= 0], "topic_id")
    if settings.lineage_view == "sankey":  # the old view, kept to compare
        labels = {int(r["topic_id"]): f"{r['topic_id']}: {r['name']}" for r in topics.to_dict("records")}
        body = (charts.embed(lineage_figure(lineage, events, labels), "sankey") if lineage is not None
                and not lineage.empty else '<p class="missing">The lineage table is empty.</p>')
        named: set[int] = set()
        body = f'<div class="lineage-view">{body}</div>'
    else:
        body, named = lineage_view(events, lineage, shares, topics, n_topics=settings.lineage_topics,
                                   min_docs=settings.min_window_docs)
    corpus = events[events["scope"] == "all"]  # the whole corpus's rows: each event counted once
    counts = corpus.groupby(["window_label", "event"]).size().unstack(fill_value=0).reset_index() \
        if not corpus.empty else corpus
    body += ('<details class="tables"><summary>Events per window (all communities) and the event table</summary>'
             + html_table(counts) + html_table(corpus.assign(related=[", ".join(map(str, r)) for r in corpus["related"]])
                                               [["window_label", "topic_id", "event", "related", "from_window"]]
                                               .sort_values(["window_label", "event"]), limit=150) + "</details>")
    details = detail_blocks(named, topics, shares, events, settings.min_window_docs)
    return Section("lineage", title, body), Section("topic-details", "Topic details", details)


def trust_section(data: Data, manifest: dict[str, Any] | None, topics: pd.DataFrame, themes: pd.DataFrame,
                  settings: ReportSettings) -> Section:
    scores = (manifest or {}).get("scores") or {}
    body = trust_section_body(scores, topics, themes, settings.catch_all_coverage)
    flat = flatten(scores)
    if flat:
        body += ('<details class="tables"><summary>Every score of this run</summary>'
                 + html_table(pd.DataFrame(flat, columns=["score", "value"])) + "</details>")
    return Section("trust", "How much to trust this", body)


# -- the page ------------------------------------------------------------------------------------------
def build_report(lake_root: str | Path, *, manifest: dict[str, Any] | None = None, out: str | Path | None = None,
                 max_series: int = 10, settings: ReportSettings | None = None,
                 shown_path: str | Path | None = None) -> dict[str, Any]:
    """Write the report (default ``<lake>/report.html``) atomically; returns its path and section statuses.
    ``shown_path``: where the page will be read (the runner writes ``out`` and moves it there)."""
    root = Path(lake_root)
    settings = settings or ReportSettings(max_series=max_series)
    manifest = manifest if manifest is not None else latest_manifest(root)
    target = Path(out) if out is not None else root / REPORT_FILE
    data = Data(root)
    charts = Charts()
    sections: list[Section] = []
    activity = None
    try:
        topics = _guard("topics", lambda: topic_info(data, settings.catch_all_coverage), pd.DataFrame())
        themes = _guard("themes", lambda: themes_quality(data, manifest, settings), pd.DataFrame())
        sections.append(_guard_section("provenance", "Provenance", lambda: provenance_section(data, manifest)))
        sections.append(_guard_section("trust", "How much to trust this",
                                       lambda: trust_section(data, manifest, topics, themes, settings)))
        result = _guard("activity", lambda: activity_section(data, charts), None)
        if result is None:
            sections.append(Section("activity", "Activity and participation",
                                    '<p class="missing">This section failed to build; see the run log.</p>', "error"))
        else:
            sections.append(result[0])
            activity = result[1]
        sections.append(_guard_section("topics", "Topic prevalence over time",
                                       lambda: topics_section(data, charts, topics, settings)))
        pair = _guard("lineage", lambda: lineage_section(data, charts, topics, settings), None)
        sections.extend(pair or [Section("lineage", "Topic lineage: what changed", '<p class="missing">This section '
                                         "failed to build; see the run log.</p>", "error")])
        sections.append(_guard_section("themes", "Theme prevalence over time",
                                       lambda: themes_section(data, charts, manifest, settings, themes)))
        sections.append(_guard_section("crosstab", "Topics × themes", lambda: crosstab_section(data, charts, topics)))
        sections.append(_guard_section("threads", "Most discussed threads", lambda: threads_section(data)))
        from edumine.report.paper import paper_sections  # the replication table (issue 15), when configured
        sections.extend(_guard("paper_table", lambda: paper_sections(data, manifest), []))
    finally:
        data.close()
    page = render_page(sections, manifest, root)
    _write_atomic(target, page)
    summary = {"path": str(shown_path or target), "bytes": len(page.encode("utf-8")), "charts": charts.count,
               "sections": {s.key: s.status for s in sections}}
    summary["prefect_artifacts"] = publish_artifacts(summary, manifest, activity)
    return summary


def _write_atomic(target: Path, page: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}"
    try:
        tmp.write_text(page, encoding="utf-8")
        kill_point("report.write")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _guard(name: str, build: Any, default: Any) -> Any:
    started = time.perf_counter()
    try:
        built = build()
    except Exception:  # noqa: BLE001  (one broken section must not cost the whole report)
        log.exception("report section %s failed", name)
        return default
    log.info("report: %s built in %.1f s", name, time.perf_counter() - started)
    return built


def _guard_section(key: str, title: str, build: Any) -> Section:
    fallback = Section(key, title, f'<p class="missing">This section failed to build from the lake\'s '
                                   f"<code>{esc(key)}</code> tables; the run log has the error.</p>", "error")
    return _guard(key, build, fallback)


def _marked(name: str, content: str) -> str:
    return f"<!--{name}:start-->{content}<!--{name}:end-->"


def _status_line(manifest: dict[str, Any] | None) -> str:
    return f'status <b class="status">{esc((manifest or {}).get("status", "unknown"))}</b>'


def render_page(sections: list[Section], manifest: dict[str, Any] | None, root: Path) -> str:
    from plotly.offline import get_plotlyjs

    from edumine.report.template import LOADER, PAGE, STYLE

    run_id = (manifest or {}).get("run_id", "no run")
    nav = "".join(f'<a href="#{s.key}" class="s-{s.status}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.key}" data-status="{s.status}"><h2>{esc(s.title)}</h2>'
                   + (_marked("provenance", s.body) if s.key == "provenance" else s.body) + "</section>"
                   for s in sections)
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return PAGE.format(style=STYLE, plotly=plotly_js, loader=LOADER, nav=nav, body=body, run=esc(run_id),
                       status=_marked("status", _status_line(manifest)),
                       config_hash=esc((manifest or {}).get("config_hash", "")), lake=esc(root),
                       generated=esc(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")))


def refresh_provenance(lake_root: str | Path, manifest: dict[str, Any], *, out: str | Path | None = None) -> bool:
    """Rewrite the status in the header and the provenance block of the report written by ``manifest``'s run
    (the report stage runs before the run closes, so it saw ``running``). False when the report is absent
    or was written by another run."""
    root = Path(lake_root)
    target = Path(out) if out is not None else root / REPORT_FILE
    if not target.is_file():
        return False
    page = target.read_text(encoding="utf-8")
    if f"<title>edumine report {esc(manifest.get('run_id'))}</title>" not in page:
        return False
    data = Data(root)
    try:
        block = provenance_body(data, manifest)
    finally:
        data.close()
    for name, content in (("status", _status_line(manifest)), ("provenance", block)):
        pattern = re.compile(f"<!--{name}:start-->.*?<!--{name}:end-->", re.S)
        page, found = pattern.subn(lambda _m, c=content, n=name: _marked(n, c), page, count=1)
        if not found:
            return False
    _write_atomic(target, page)
    return True
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
    scores = flatten(manifest.get("scores") or {})
    if scores:
        lines += ["", "| score | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in scores]
    return "\n".join(lines)
