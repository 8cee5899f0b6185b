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


MAX_LINKS = 200  # the strongest lineage links drawn; the lineage table keeps them all


def _short(text: Any, limit: int = 48) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def esc(value: Any) -> str:
    """Text for a plotly label: markup characters escaped (plotly shows &lt; as <, but not &quot; as ")."""
    return html.escape("" if value is None else str(value), quote=False)


def _figure(**layout: Any) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(**{**LAYOUT, **layout})
    return fig


def _palette(n: int) -> list[str]:
    import plotly.express as px

    colours = px.colors.qualitative.D3 + px.colors.qualitative.Set2
    return [colours[i % len(colours)] for i in range(n)]


def _by_size(frame: pd.DataFrame, weight: str) -> list[str]:
    """Communities, the largest (by ``weight``) first."""
    return list(frame.groupby("community")[weight].sum().sort_values(ascending=False, kind="stable").index)


def _community_menu(fig: Any, owners: list[str], communities: list[str], title: str) -> None:
    """Show one community at a time, chosen from a menu (the largest first)."""
    if len(communities) == 1:
        fig.update_layout(title_text=f"{title}: {esc(communities[0])}")
    if len(communities) < 2:
        return
    buttons = [{"label": esc(c), "method": "update",
                "args": [{"visible": [o == c for o in owners]}, {"title.text": f"{title}: {esc(c)}"}]}
               for c in communities]
    fig.update_layout(title_text=f"{title}: {esc(communities[0])}", margin_t=100, title_y=0.97,
                      updatemenus=[{"buttons": buttons, "x": 0.0, "xanchor": "left", "y": 1.12,
                                    "yanchor": "bottom", "showactive": True}])


def _ordered_windows(fig: Any, labels: Any) -> None:
    # Window labels (2018-03, 2018Q1, 2018H1, 2018) sort as text in time order. An explicit array:
    # plotly.js fails on "category ascending" when some traces start hidden.
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=sorted({str(v) for v in labels}))


def activity_figure(activity: pd.DataFrame) -> Any:
    """Posts and comments per window, stacked by community (comments hatched)."""
    fig = _figure(title="Contributions per window (posts solid, comments hatched)", barmode="stack",
                  yaxis_title="contributions")
    communities = _by_size(activity, "contributions")
    for community, colour in zip(communities, _palette(len(communities))):
        rows = activity[activity["community"] == community]
        for kind in ("posts", "comments"):
            if kind == "comments" and not rows["comments"].any():
                continue
            fig.add_bar(x=rows["window_label"], y=rows[kind], name=f"{esc(community)} {kind}",
                        legendgroup=esc(community), marker_color=colour,
                        marker_pattern_shape="/" if kind == "comments" else "",
                        hovertemplate=f"{esc(community)}<br>%{{x}}: %{{y}} {kind}<extra></extra>")
    _ordered_windows(fig, activity["window_label"])
    return fig


def people_figure(activity: pd.DataFrame) -> Any:
    """Contributors, posters, responders and new contributors per window (a menu picks the community)."""
    title = "People per window"
    fig = _figure(title=title, yaxis_title="distinct pseudonyms")
    communities = [c for c in _by_size(activity, "contributors")
                   if activity.loc[activity["community"] == c, "contributors"].any()] or _by_size(activity, "posts")
    owners = []
    for community in communities:
        rows = activity[activity["community"] == community]
        for column in ("contributors", "posters", "responders", "new_contributors", "one_time_contributors"):
            fig.add_scatter(x=rows["window_label"], y=rows[column], mode="lines+markers",
                            name=column.replace("_", " "), visible=community == communities[0])
            owners.append(community)
    _community_menu(fig, owners, communities, title)
    _ordered_windows(fig, activity["window_label"])
    return fig


def rates_figure(activity: pd.DataFrame) -> Any:
    """Response rate, self-response share, reciprocity and transitivity (a menu picks the community)."""
    title = "Conversation: response rate, self-response share, reply-network reciprocity and transitivity"
    fig = _figure(title=title, yaxis_title="share", yaxis_range=[0, 1])
    communities = [c for c in _by_size(activity, "comments")
                   if activity.loc[activity["community"] == c, "response_rate"].notna().any()]
    owners = []
    for community in communities:
        rows = activity[activity["community"] == community]
        for column in ("response_rate", "self_response_share", "reciprocity", "transitivity"):
            fig.add_scatter(x=rows["window_label"], y=rows[column], mode="lines+markers",
                            name=column.replace("_", " "), visible=community == communities[0])
            owners.append(community)
    if not communities:
        fig.add_annotation(text="No community has comments in the lake: these rates are unknown.", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
    _community_menu(fig, owners, communities, title)
    _ordered_windows(fig, activity["window_label"])
    return fig


def prevalence_figure(frame: pd.DataFrame, *, series: str, title: str, labels: dict[Any, str]) -> Any:
    """Share per window of each series (topic or theme), one line per series, with the 95 % interval as
    error bars when the table has one. Several communities: a menu picks the community shown."""
    fig = _figure(title=title, yaxis_title="share of documents", height=480)
    communities = _by_size(frame, "docs") if frame["docs"].notna().any() else sorted(frame["community"].unique())
    owners = []
    for community in communities:
        for key, rows in frame[frame["community"] == community].groupby(series, sort=True):
            name = esc(labels.get(key, str(key)))
            error = None
            if "low" in rows and "high" in rows and rows["low"].notna().any():
                error = {"type": "data", "symmetric": False, "array": (rows["high"] - rows["share"]).tolist(),
                         "arrayminus": (rows["share"] - rows["low"]).tolist(), "thickness": 1}
            fig.add_scatter(x=rows["window_label"], y=rows["share"], mode="lines+markers", name=name, error_y=error,
                            visible=community == communities[0], customdata=rows["docs"],
                            hovertemplate=name + "<br>%{x}: %{y:.1%} (%{customdata} docs)<extra></extra>")
            owners.append(community)
    _community_menu(fig, owners, communities, title)
    fig.update_yaxes(tickformat=".0%")
    _ordered_windows(fig, frame["window_label"])
    return fig


def _sankey(lineage: pd.DataFrame, event_of: dict[tuple, str], labels: dict[Any, str],
            visible: bool) -> tuple[Any, list]:
    import plotly.graph_objects as go

    lineage = lineage.nlargest(MAX_LINKS, "similarity")
    nodes: dict[tuple, int] = {}
    for window, topic in list(zip(lineage["from_window"], lineage["from_topic"])) + \
            list(zip(lineage["to_window"], lineage["to_topic"])):
        nodes.setdefault((str(window), topic), len(nodes))
    ordered = sorted(nodes, key=nodes.get)
    node_events = [event_of.get(key, "") for key in ordered]
    trace = go.Sankey(
        arrangement="snap", visible=visible,
        node={"label": [f"{esc(w)} · {esc(_short(labels.get(t, t)))}" for w, t in ordered],
              "color": [EVENT_COLOURS.get(e, "#c5ccd3") for e in node_events], "pad": 12, "thickness": 14,
              "customdata": [esc(e) or "no event recorded" for e in node_events],
              "hovertemplate": "%{label}<br>event: %{customdata}<extra></extra>"},
        link={"source": [nodes[(str(w), t)] for w, t in zip(lineage["from_window"], lineage["from_topic"])],
              "target": [nodes[(str(w), t)] for w, t in zip(lineage["to_window"], lineage["to_topic"])],
              "value": [max(float(v), 1e-3) for v in lineage["similarity"]],
              "hovertemplate": "similarity %{value:.2f}<extra></extra>"},
    )
    return trace, node_events


def lineage_figure(lineage: pd.DataFrame, events: pd.DataFrame | None, labels: dict[Any, str]) -> Any:
    """The topic lineage as a Sankey: a node per (window, topic), links weighted by similarity, nodes
    coloured by the event of that topic in that window. Several communities: a menu picks one."""
    import plotly.graph_objects as go

    if "community" not in lineage:
        lineage = lineage.assign(community="all")
    event_of: dict[str, dict[tuple, str]] = {}
    if events is not None and not events.empty:
        communities_of_events = events["community"] if "community" in events else ["all"] * len(events)
        for community, window, topic, event in zip(communities_of_events, events["window_label"], events["topic_id"],
                                                   events["event"]):
            event_of.setdefault(str(community), {}).setdefault((str(window), topic), str(event))
    communities = list(lineage.groupby("community").size().sort_values(ascending=False, kind="stable").index)
    fig = go.Figure()
    seen: set[str] = set()
    owners = []
    for community in communities:
        trace, node_events = _sankey(lineage[lineage["community"] == community], event_of.get(str(community), {}),
                                     labels, visible=community == communities[0])
        fig.add_trace(trace)
        owners.append(community)
        seen.update(node_events)
    for event, colour in EVENT_COLOURS.items():  # a legend for the node colours
        if event in seen:
            fig.add_scatter(x=[None], y=[None], mode="markers", marker={"color": colour, "size": 10}, name=event)
            owners.append(None)
    nodes = lineage.groupby("community").size().max() if len(lineage) else 0
    fig.update_layout(**{**LAYOUT, "height": int(min(1400, max(440, 9 * min(nodes, MAX_LINKS))))},
                      title="Topic lineage across windows (node colour: event)",
                      xaxis={"visible": False}, yaxis={"visible": False})
    if len(communities) > 1:
        title = "Topic lineage across windows (node colour: event)"
        buttons = [{"label": esc(c), "method": "update",
                    "args": [{"visible": [o == c or o is None for o in owners]}, {"title.text": f"{title}: {esc(c)}"}]}
                   for c in communities]
        fig.update_layout(title_text=f"{title}: {esc(communities[0])}", margin_t=100, title_y=0.97,
                          updatemenus=[{"buttons": buttons, "x": 0.0, "xanchor": "left", "y": 1.08,
                                        "yanchor": "bottom"}])
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
