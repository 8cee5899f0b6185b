"""The report's sections, each built from the lake's aggregate tables (``report_data``) into a ``Section``.

A section whose tables are missing says so (and which stage makes them) instead of failing.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from edumine.report.charts import activity_figure, heatmap_figure, people_figure, prevalence_figure, rates_figure
from edumine.report.data import ALL, Data, prevalence, theme_reliability, with_all_scope
from edumine.report.html import Charts, Section, esc, html_table, missing, short


@dataclass
class ReportSettings:
    """What the report draws; ``report`` in the config (``pipelines/stages/report.py``) sets them."""

    max_series: int = 10
    lineage_topics: int = 20
    min_window_docs: int = 30
    catch_all_coverage: float = 0.2
    lineage_view: str = "timeline"  # timeline | sankey (the old view, kept for comparison)
    reliability_floor: float | None = None  # None: themes.reliability_floor of the run, else 0.5


# -- provenance -------------------------------------------------------------------------------------------
def provenance_body(data: Data, manifest: dict[str, Any] | None) -> str:
    parts = []
    if manifest is None:
        parts.append('<p class="missing">No run manifest in this lake (<code>runs/*/manifest.json</code>).</p>')
    else:
        code = manifest.get("code_version") or {}
        status = manifest.get("status")
        run = pd.DataFrame([
            ("run", manifest.get("run_id")), ("flow", manifest.get("flow")), ("status", status),
            ("started", manifest.get("started_at")), ("finished", manifest.get("finished_at")),
            ("config hash", manifest.get("config_hash")),
            ("window unit", ((manifest.get("config") or {}).get("windows") or {}).get("unit")),
            ("edumine", code.get("edumine")),
            ("git commit", (code.get("git_commit") or "")[:12]
             + (" (uncommitted changes)" if code.get("git_dirty") else "")),
            ("pseudonym key id", manifest.get("pseudonym_key_id")),
        ], columns=["", "value"])
        parts.append(f'<p class="run-status" data-status="{esc(status)}">Run status: <b>{esc(status)}</b></p>'
                     + html_table(run))
        inputs = pd.DataFrame([{k: item.get(k) for k in ("label", "kind", "records", "added", "updated", "duplicates",
                                                          "filtered", "quarantined_total")}
                               for item in manifest.get("inputs") or []])
        parts.append("<h3>Inputs of this run</h3>" + (html_table(inputs) if not inputs.empty else
                                                      '<p class="missing">This run read no source.</p>'))
    if data.has("posts"):
        data.require("posts", ["platform", "community", "kind", "author", "created_at"])
        coverage = data.frame(
            "SELECT platform, community, count(*) FILTER (WHERE kind = 'post') AS posts, "
            "count(*) FILTER (WHERE kind = 'comment') AS comments, count(*) FILTER (WHERE author IS NULL) "
            "AS unknown_author, strftime(min(created_at), '%Y-%m-%d') AS first, "
            "strftime(max(created_at), '%Y-%m-%d') AS last FROM posts GROUP BY ALL ORDER BY 1, 2")
        parts.append("<h3>Data coverage (the whole lake)</h3>" + html_table(coverage))
    else:
        parts.append("<h3>Data coverage</h3>" + missing("posts"))
    if data.has("quarantine"):
        data.require("quarantine", ["source", "reason", "run_id"])
        quarantine = data.frame("SELECT source, reason, count(*) AS records, count(DISTINCT run_id) AS runs "
                                "FROM quarantine GROUP BY ALL ORDER BY 3 DESC")
        parts.append("<h3>Quarantined records (all runs)</h3>" + html_table(quarantine))
    else:
        parts.append("<h3>Quarantined records</h3><p>None: every record read so far was usable.</p>")
    return "".join(parts)


def provenance_section(data: Data, manifest: dict[str, Any] | None) -> Section:
    return Section("provenance", "Provenance", provenance_body(data, manifest))


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for key, inner in value.items() for item in flatten(inner, f"{prefix}{key}.")]
    if isinstance(value, list) and len(value) > 8:
        value = f"{len(value)} values"
    return [(prefix.rstrip("."), value if isinstance(value, (int, float)) and not isinstance(value, bool)
             else json.dumps(value, default=str))]


# -- activity ---------------------------------------------------------------------------------------------
def activity_section(data: Data, charts: Charts) -> tuple[Section, pd.DataFrame | None]:
    if not data.has("community_activity"):
        return Section("activity", "Activity and participation", missing("community_activity"), "missing"), None
    activity = data.table("community_activity", order="window_start, platform, community")
    body = (charts.embed(activity_figure(activity)) + charts.embed(people_figure(activity), "people")
            + '<p class="note">Windows where no contribution has an author (sources without authors, or no data) '
              "are unknown: no point is drawn and a grey band marks them.</p>"
            + charts.embed(rates_figure(activity))
            + "<h3>Metrics per window and community</h3>"
            + '<p class="note">Definitions: docs/metrics.md. Unknown (deleted) authors are never counted as people.</p>'
            + html_table(people_unknown(activity.assign(window_start=activity["window_start"].astype(str)))))
    return Section("activity", "Activity and participation", body), activity


PEOPLE = ("contributors", "posters", "responders", "new_contributors", "returning_contributors",
          "one_time_contributors")


def people_unknown(activity: pd.DataFrame) -> pd.DataFrame:
    """Counts of people read "unknown" in windows where no contribution has an author (not 0)."""
    unknown = activity["unknown_author_contributions"] >= activity["contributions"]
    shown = activity.copy()
    for column in PEOPLE:
        shown[column] = [("unknown" if u else v) for u, v in zip(unknown, shown[column])]
    return shown


# -- prevalence -------------------------------------------------------------------------------------------
def _top(frame: pd.DataFrame, series: str, limit: int) -> list[Any]:
    return list(frame.groupby(series)["hits"].sum().nlargest(limit).index)


def gap_note(frame: pd.DataFrame, min_docs: int) -> str:
    sizes = frame.drop_duplicates(["window_label", "community"])
    small = sizes[sizes["total"] < min_docs].sort_values(["community", "window_label"])
    if small.empty:
        return ""
    listed = "; ".join(f"{community}: " + ", ".join(f"{w} ({int(t):,})" for w, t in zip(rows["window_label"],
                                                                                        rows["total"]))
                       for community, rows in small.groupby("community", sort=False))
    return (f'<p class="note gaps">Gaps: windows with fewer than {min_docs} documents are not drawn (a share of '
            f"1 of 1 says nothing). Windows (docs) left out: {esc(listed)}.</p>")


def topics_section(data: Data, charts: Charts, topics: pd.DataFrame, settings: ReportSettings) -> Section:
    if not data.has("topic_prevalence"):
        return Section("topics", "Topic prevalence over time", missing("topic_prevalence"), "missing")
    frame = prevalence(data, "topic_prevalence")
    frame = frame[frame["topic_id"] >= 0]  # -1: outliers of the topic model
    catch_all = set(topics.loc[topics["catch_all"].astype(bool), "topic_id"]) if not topics.empty else set()
    labels = {int(r["topic_id"]): f"#{r['topic_id']} {r['name']}" for r in topics.to_dict("records")}
    if catch_all:  # one series for every catch-all topic
        unclear = frame[frame["topic_id"].isin(catch_all)].groupby(
            ["window_label", "window_start", "community"], as_index=False).agg(hits=("hits", "sum"),
                                                                               total=("total", "first"))
        unclear["share"] = unclear["hits"] / unclear["total"].where(unclear["total"] > 0)
        unclear["topic_id"], unclear["low"], unclear["high"] = -2, float("nan"), float("nan")
        frame = pd.concat([frame[~frame["topic_id"].isin(catch_all)], unclear], ignore_index=True)
        labels[-2] = f"unclear / spam ({len(catch_all)} topics)"
    top = _top(frame[frame["topic_id"] != -2], "topic_id", settings.max_series)
    frame = with_all_scope(frame, "topic_id", keep=top + [-2])
    frame = frame[frame["topic_id"].isin(top + [-2])]
    figure = prevalence_figure(frame, series="topic_id", labels=labels, min_docs=settings.min_window_docs,
                               title=f"Topic prevalence per window (top {settings.max_series} topics)")
    parts = [charts.embed(figure, "topic-prevalence"), gap_note(frame, settings.min_window_docs)]
    if not topics.empty:
        shown = topics.assign(terms=[", ".join(t) for t in topics["terms"]],
                              quality=["unclear / spam" if c else "" for c in topics["catch_all"]])
        shown = shown.sort_values(["catch_all", "size"], ascending=[True, False])
        parts.append("<h3>Topics</h3>" + html_table(shown[["topic_id", "terms", "title", "size", "coverage",
                                                          "quality"]], limit=100))
    return Section("topics", "Topic prevalence over time", "".join(parts))


def _flagged(reliable: Any) -> bool:
    """True for a theme measured as unreliable (False); unknown (None / NaN) is not flagged."""
    return reliable is not None and not (isinstance(reliable, float) and pd.isna(reliable)) and not bool(reliable)


def themes_section(data: Data, charts: Charts, manifest: dict[str, Any] | None, settings: ReportSettings,
                   themes: pd.DataFrame) -> Section:
    if not data.has("theme_prevalence"):
        return Section("themes", "Theme prevalence over time", missing("theme_prevalence"), "missing")
    labels = dict(zip(themes["theme"], themes["label"])) if not themes.empty else {}
    unreliable = {r["theme"]: ("unreliable: F1 " + ("unknown" if pd.isna(r["f1"]) else f"{float(r['f1']):.2f}"))
                  for r in themes.to_dict("records") if _flagged(r["reliable"])}
    frame = prevalence(data, "theme_prevalence")
    top = _top(frame, "theme", settings.max_series)
    frame = with_all_scope(frame, "theme", keep=top)
    frame = frame[frame["theme"].isin(top)]
    figure = prevalence_figure(frame, series="theme", labels=labels, min_docs=settings.min_window_docs,
                               unreliable=unreliable, title="Theme prevalence per window")
    note = ""
    if unreliable:
        floor = themes.attrs.get("floor", 0.5)
        note = (f'<p class="note">Dotted grey: themes whose classifier scored under the reliability floor (F1 '
                f"{floor}) in cross-validation: {esc(', '.join(str(labels.get(t, t)) for t in unreliable))}. "
                "Read their shares as rough.</p>")
    return Section("themes", "Theme prevalence over time",
                   charts.embed(figure, "theme-prevalence") + note + gap_note(frame, settings.min_window_docs))


# -- topics x themes, threads -----------------------------------------------------------------------------
def topic_theme_counts(data: Data) -> pd.DataFrame:
    """Documents per topic x theme, from doc_topics and doc_themes (a list of themes per doc)."""
    data.require("doc_topics", ["uid", "topic_id"])
    data.require("doc_themes", ["uid", "themes"])
    return data.frame("WITH t AS (SELECT DISTINCT uid, unnest(themes) AS theme FROM doc_themes) "
                      "SELECT d.topic_id, t.theme, count(DISTINCT d.uid) AS docs "
                      "FROM doc_topics d JOIN t USING (uid) WHERE t.theme IS NOT NULL AND d.topic_id >= 0 "
                      "GROUP BY ALL")


def crosstab_section(data: Data, charts: Charts, topics: pd.DataFrame) -> Section:
    absent = [n for n in ("doc_topics", "doc_themes") if not data.has(n)]
    if absent:
        return Section("crosstab", "Topics × themes", missing(*absent), "missing")
    counts = topic_theme_counts(data)
    if counts.empty:
        return Section("crosstab", "Topics × themes",
                       '<p class="missing">No document has both a topic and a theme.</p>', "missing")
    labels = {int(r["topic_id"]): f"#{r['topic_id']} {r['name']}" for r in topics.to_dict("records")}
    return Section("crosstab", "Topics × themes", charts.embed(heatmap_figure(counts, labels)))


def threads_section(data: Data, limit: int = 15) -> Section:
    if not data.has("posts"):
        return Section("threads", "Most discussed threads", missing("posts"), "missing")
    data.require("posts", ["uid", "kind", "thread_uid", "community", "created_at", "title", "score", "url"])
    top = data.frame(
        "WITH c AS (SELECT thread_uid, count(*) AS comments_in_lake FROM posts WHERE kind = 'comment' GROUP BY 1) "
        "SELECT p.community, strftime(p.created_at, '%Y-%m-%d') AS day, coalesce(p.title, '[deleted]') AS title, "
        "c.comments_in_lake, p.score, p.url FROM posts p JOIN c ON c.thread_uid = p.uid WHERE p.kind = 'post' "
        f"ORDER BY c.comments_in_lake DESC, p.created_at LIMIT {int(limit)}")
    if top.empty:
        return Section("threads", "Most discussed threads",
                       '<p class="missing">No thread has comments in the lake.</p>', "missing")
    rows = []
    for record in top.itertuples(index=False):
        title = esc(short(html.unescape(record.title), 160))  # Reddit's own &amp; entities; esc() re-escapes
        url = str(record.url or "")
        if url.startswith(("https://", "http://")):  # the thread's own link instead of a column of long URLs
            title = f'<a href="{esc(url)}" rel="noreferrer noopener" target="_blank">{title}</a>'
        score = "" if pd.isna(record.score) else f"{int(record.score):,}"
        rows.append(f"<tr><td>{esc(record.community)}</td><td>{esc(record.day)}</td><td>{title}</td>"
                    f'<td class="num">{int(record.comments_in_lake):,}</td><td class="num">{score}</td></tr>')
    table = ('<div class="table"><table class="threads"><thead><tr><th>community</th><th>day</th><th>thread</th>'
             f'<th>comments in lake</th><th>score</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return Section("threads", "Most discussed threads", table)


def themes_quality(data: Data, manifest: dict[str, Any] | None, settings: ReportSettings) -> pd.DataFrame:
    return theme_reliability(data, manifest, settings.reliability_floor)


__all__ = ["ALL", "ReportSettings", "activity_section", "crosstab_section", "flatten", "provenance_section",
           "themes_section", "threads_section", "topics_section"]
