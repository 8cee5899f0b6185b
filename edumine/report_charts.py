"""Plotly figures for the report, one function per chart, from plain DataFrames.

Every text taken from the data (community names, topic labels and terms, theme names) passes through
``esc`` before it reaches plotly: plotly reads a small HTML subset in labels, so ``&lt;script&gt;`` is
what shows ``<script>`` as text. Figures are returned as plotly ``Figure`` objects; ``report`` embeds them.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

EVENT_COLOURS = {"emerged": "#2ca02c", "persisted": "#9aa5b1", "grew": "#1f77b4", "declined": "#d62728",
                 "faded": "#7f7f7f", "split": "#ff7f0e", "merged": "#9467bd"}
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "height": 420,
          "legend": {"orientation": "h", "y": -0.2}}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _figure(**layout: Any) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(**{**LAYOUT, **layout})
    return fig


def activity_figure(activity: pd.DataFrame) -> Any:
    """Posts and comments per window, stacked, one bar group per community."""
    fig = _figure(title="Contributions per window (posts and comments)", barmode="stack",
                  yaxis_title="contributions")
    for kind, colour in (("posts", "#1f77b4"), ("comments", "#ff7f0e")):
        for community, rows in activity.groupby("community", sort=True):
            fig.add_bar(x=rows["window_label"], y=rows[kind], name=f"{esc(community)} {kind}",
                        offsetgroup=esc(community), legendgroup=esc(community),
                        marker_color=colour, marker_opacity=0.55 if kind == "comments" else 0.9,
                        hovertemplate=f"{esc(community)}<br>%{{x}}: %{{y}} {kind}<extra></extra>")
    return fig


def people_figure(activity: pd.DataFrame) -> Any:
    """Contributors, posters, responders and new contributors per window and community."""
    fig = _figure(title="People per window", yaxis_title="distinct pseudonyms")
    dashes = {"contributors": "solid", "posters": "dot", "responders": "dash", "new_contributors": "dashdot"}
    for community, rows in activity.groupby("community", sort=True):
        for column, dash in dashes.items():
            fig.add_scatter(x=rows["window_label"], y=rows[column], mode="lines+markers", line_dash=dash,
                            name=f"{esc(community)} {column.replace('_', ' ')}", legendgroup=esc(community))
    return fig


def rates_figure(activity: pd.DataFrame) -> Any:
    """Response rate, self-response share and reply-network reciprocity per window and community."""
    fig = _figure(title="Conversation: response rate, self-response share, reciprocity",
                  yaxis_title="share", yaxis_range=[0, 1])
    dashes = {"response_rate": "solid", "self_response_share": "dot", "reciprocity": "dash"}
    for community, rows in activity.groupby("community", sort=True):
        for column, dash in dashes.items():
            if rows[column].notna().any():
                fig.add_scatter(x=rows["window_label"], y=rows[column], mode="lines+markers", line_dash=dash,
                                name=f"{esc(community)} {column.replace('_', ' ')}", legendgroup=esc(community))
    return fig


def prevalence_figure(frame: pd.DataFrame, *, series: str, title: str, labels: dict[Any, str]) -> Any:
    """Share per window of each series (topic or theme), one line per series and community, with
    the 95 % interval as error bars when the table has one."""
    fig = _figure(title=title, yaxis_title="share of documents", height=460)
    multi = frame["community"].nunique() > 1
    for (key, community), rows in frame.groupby([series, "community"], sort=True):
        name = labels.get(key, str(key))
        if multi:
            name = f"{name} ({community})"
        error = None
        if "low" in rows and "high" in rows and rows["low"].notna().any():
            error = {"type": "data", "symmetric": False, "array": (rows["high"] - rows["share"]).tolist(),
                     "arrayminus": (rows["share"] - rows["low"]).tolist(), "thickness": 1}
        fig.add_scatter(x=rows["window"], y=rows["share"], mode="lines+markers", name=esc(name), error_y=error,
                        customdata=rows["docs"] if "docs" in rows else None,
                        hovertemplate=esc(name) + "<br>%{x}: %{y:.1%}"
                        + (" (%{customdata} docs)" if "docs" in rows else "") + "<extra></extra>")
    fig.update_yaxes(tickformat=".0%")
    return fig


def lineage_figure(lineage: pd.DataFrame, events: pd.DataFrame | None, labels: dict[Any, str]) -> Any:
    """The topic lineage as a Sankey: a node per (window, topic), links weighted by similarity, nodes
    coloured by the event of that topic in that window."""
    import plotly.graph_objects as go

    nodes: dict[tuple, int] = {}
    for window, topic in list(zip(lineage["from_window"], lineage["from_topic"])) + \
            list(zip(lineage["to_window"], lineage["to_topic"])):
        nodes.setdefault((str(window), topic), len(nodes))
    event_of: dict[tuple, str] = {}
    if events is not None and not events.empty:
        for window, topic, event in zip(events["window"], events["topic_id"], events["event"]):
            event_of.setdefault((str(window), topic), str(event))
    ordered = sorted(nodes, key=nodes.get)
    node_labels = [f"{esc(w)} · {esc(labels.get(t, t))}" for w, t in ordered]
    node_events = [event_of.get(key, "") for key in ordered]
    colours = [EVENT_COLOURS.get(e, "#c5ccd3") for e in node_events]
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": node_labels, "color": colours, "pad": 12, "thickness": 14,
              "customdata": [esc(e) or "no event recorded" for e in node_events],
              "hovertemplate": "%{label}<br>event: %{customdata}<extra></extra>"},
        link={"source": [nodes[(str(w), t)] for w, t in zip(lineage["from_window"], lineage["from_topic"])],
              "target": [nodes[(str(w), t)] for w, t in zip(lineage["to_window"], lineage["to_topic"])],
              "value": [max(float(v), 1e-3) for v in lineage["similarity"]],
              "hovertemplate": "similarity %{value:.2f}<extra></extra>"},
    ))
    for event, colour in EVENT_COLOURS.items():  # a legend for the node colours
        if event in node_events:
            fig.add_scatter(x=[None], y=[None], mode="markers", marker={"color": colour, "size": 10}, name=event)
    fig.update_layout(**{**LAYOUT, "height": max(420, 18 * len(nodes) // 2)},
                      title="Topic lineage across windows (node colour: event)",
                      xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def heatmap_figure(counts: pd.DataFrame, labels: dict[Any, str]) -> Any:
    """Documents per topic x theme."""
    import plotly.graph_objects as go

    table = counts.pivot_table(index="topic_id", columns="theme", values="docs", fill_value=0, aggfunc="sum")
    fig = go.Figure(go.Heatmap(
        z=table.values, x=[esc(c) for c in table.columns], y=[esc(labels.get(t, t)) for t in table.index],
        colorscale="Blues", hovertemplate="%{y}<br>%{x}: %{z} docs<extra></extra>"))
    fig.update_layout(**{**LAYOUT, "height": max(420, 24 * len(table.index) + 120)},
                      title="Topics × themes (documents)", yaxis={"type": "category", "automargin": True},
                      xaxis={"type": "category"})
    return fig
