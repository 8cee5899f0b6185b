"""Participation metrics in the shape of Staudt Willet & Carpenter (2021): metrics as rows, community x window
(semester) as columns, so that a replication's numbers sit next to the published table.

The ``paper_table`` stage (``pipelines/stages/paper_table.py``) writes ``<lake>/paper_table/`` in long form
(one row per metric, community and window); ``paper_sections`` renders it in the report when the run's config
enables it. Metric definitions and how they map to the paper's: ``docs/metrics.md``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

TABLE = "paper_table"
# The paper's measures, in our names and in the paper's order (docs/metrics.md, "The paper's table").
PAPER_METRICS = ["posts", "comments", "contributors", "posters", "responders", "new_contributors",
                 "returning_contributors", "one_time_contributors", "response_rate", "responses_per_thread",
                 "self_response_share", "reciprocity"]
RATES = {"response_rate", "responses_per_thread", "self_response_share", "mean_degree", "reciprocity",
         "transitivity"}
TITLE = "Participation in the shape of Staudt Willet & Carpenter (2021)"


def paper_long(activity: pd.DataFrame, *, metrics: list[str], communities: list[str] | None = None,
               since: date | None = None, until: date | None = None) -> pd.DataFrame:
    """``community_activity`` rows as (metric, community, window) values, in the order the table shows them."""
    frame = activity.copy()
    frame["window_start"] = pd.to_datetime(frame["window_start"])
    if communities:
        order = [c.lower() for c in communities]
        frame = frame[frame["community"].str.lower().isin(order)]
    else:
        order = sorted(frame["community"].unique())
    if since is not None:
        frame = frame[frame["window_start"] >= pd.Timestamp(since)]
    if until is not None:
        frame = frame[frame["window_start"] <= pd.Timestamp(until)]
    rank = {name: n for n, name in enumerate(order)}
    frame = frame.assign(community_order=frame["community"].str.lower().map(rank))
    long = frame.melt(id_vars=["community", "community_order", "window_start", "window_label"], value_vars=metrics,
                      var_name="metric", value_name="value")
    long["metric_order"] = long["metric"].map({m: n for n, m in enumerate(metrics)})
    long["value"] = long["value"].astype(float)
    return long.sort_values(["metric_order", "community_order", "window_start"], ignore_index=True)[
        ["metric_order", "metric", "community_order", "community", "window_start", "window_label", "value"]]


def paper_wide(long: pd.DataFrame) -> pd.DataFrame:
    """Metrics as rows; (community, window label) as columns."""
    wide = long.pivot(index=["metric_order", "metric"],
                      columns=["community_order", "community", "window_start", "window_label"], values="value")
    wide = wide.sort_index(axis=0).sort_index(axis=1)
    wide.index = wide.index.droplevel("metric_order")
    wide.columns = wide.columns.droplevel(["community_order", "window_start"])
    return wide


def paper_html(wide: pd.DataFrame) -> str:
    from edumine.report.build import esc

    communities: list[tuple[str, int]] = []
    for community, _ in wide.columns:
        if communities and communities[-1][0] == community:
            communities[-1] = (community, communities[-1][1] + 1)
        else:
            communities.append((community, 1))
    head = "<tr><th rowspan=\"2\">metric</th>" + "".join(
        f'<th colspan="{span}">r/{esc(name)}</th>' for name, span in communities) + "</tr>"
    head += "<tr>" + "".join(f"<th>{esc(label)}</th>" for _, label in wide.columns) + "</tr>"
    rows = []
    for metric, values in wide.iterrows():
        cells = "".join(f'<td class="num">{_format(metric, v)}</td>' for v in values)
        rows.append(f"<tr><th>{esc(metric)}</th>{cells}</tr>")
    return f'<table class="paper"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _format(metric: str, value: Any) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{value:.3f}" if metric in RATES else f"{int(round(value)):,}"


def paper_sections(data: Any, manifest: dict[str, Any] | None) -> list[Any]:
    """The report's section, when this run's config enabled ``paper_table`` and the stage wrote the table."""
    from edumine.report.build import Section

    settings = ((manifest or {}).get("config") or {}).get(TABLE) or {}
    if not settings.get("enabled"):
        return []
    title = settings.get("title") or TITLE
    if not data.has(TABLE):
        return [Section(TABLE, title, '<p class="missing">Not available: no <code>paper_table</code> table in this '
                                      "lake. The metrics and paper_table stages make it: run <code>edumine run</code> "
                                      "again.</p>", "missing")]
    long = data.table(TABLE)
    if long.empty:
        return [Section(TABLE, title, "<p>No window of the chosen communities has data.</p>", "missing")]
    note = ("<p>Metrics as rows, community × window as columns, as the published tables lay them out "
            "(Staudt Willet &amp; Carpenter, 2021, <i>British Journal of Educational Technology</i>). "
            "Definitions and how they map to the paper's: <code>docs/metrics.md</code>; the numbers are also in "
            "the lake table <code>paper_table</code> (<code>edumine query</code>).</p>")
    return [Section(TABLE, title, note + paper_html(paper_wide(long)))]
