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
    """Show one community at a time, chosen from a menu (the largest first). The menu sits in its own band
    between the title and the plot, so it covers neither."""
    if len(communities) == 1:
        fig.update_layout(title_text=f"{title}: {esc(communities[0])}")
    if len(communities) < 2:
        return
    names = {c: "all communities" if c == "all" else esc(c) for c in communities}
    buttons = [{"label": names[c], "method": "update",
                "args": [{"visible": [o == c for o in owners]}, {"title.text": f"{title}: {names[c]}"}]}
               for c in communities]
    fig.update_layout(title_text=f"{title}: {names[communities[0]]}", margin_t=110,
                      title={"y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 12}},
                      updatemenus=[{"buttons": buttons, "x": 0.0, "xanchor": "left", "y": 1.0,
                                    "yanchor": "bottom", "pad": {"b": 8}, "showactive": True}])


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
    """Contributors, posters, responders and new contributors per window (a menu picks the community).
    A window whose contributions all lack an author (sources without authors) is unknown, not zero: no point,
    and a grey band says so."""
    title = "People per window"
    fig = _figure(title=title, yaxis_title="distinct pseudonyms")
    communities = [c for c in _by_size(activity, "contributors")
                   if activity.loc[activity["community"] == c, "contributors"].any()] or _by_size(activity, "posts")
    owners = []
    for community in communities:
        rows = activity[activity["community"] == community]
        unknown = rows["unknown_author_contributions"] >= rows["contributions"]
        for column in ("contributors", "posters", "responders", "new_contributors", "one_time_contributors"):
            values = rows[column].astype(float).where(~unknown)
            fig.add_scatter(x=rows["window_label"], y=values, mode="lines+markers", connectgaps=False,
                            name=column.replace("_", " "), visible=community == communities[0])
            owners.append(community)
        labels = rows.loc[unknown, "window_label"].astype(str).tolist()
        fig.add_bar(x=labels, y=[1] * len(labels), yaxis="y2", name="unknown: no authored contribution in the lake",
                    marker_color="rgba(140,150,160,0.25)", hovertemplate="%{x}: authors unknown<extra></extra>",
                    visible=community == communities[0], showlegend=bool(labels))
        owners.append(community)
    fig.update_layout(yaxis2={"overlaying": "y", "range": [0, 1], "visible": False}, bargap=0)
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


def _rgba(colour: str, alpha: float) -> str:
    """``#rrggbb`` or ``rgb(r, g, b)`` (plotly's palettes use both) with an alpha."""
    if colour.startswith("rgb"):
        red, green, blue = (int(float(v)) for v in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3])
    else:
        red, green, blue = (int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def _band(windows: list[str], low: pd.Series, high: pd.Series) -> tuple[list, list]:
    """One closed shape per run of windows with an interval, separated by gaps (plotly's fill "toself" fills
    each segment on its own, so a band never bridges a window that is not drawn)."""
    xs: list = []
    ys: list = []
    run: list[int] = []
    for i in range(len(windows) + 1):
        if i < len(windows) and pd.notna(low.iloc[i]) and pd.notna(high.iloc[i]):
            run.append(i)
            continue
        if run:
            xs += [windows[j] for j in run] + [windows[j] for j in reversed(run)] + [None]
            ys += [round(float(high.iloc[j]), 5) for j in run] + [round(float(low.iloc[j]), 5) for j in reversed(run)]
            ys.append(None)
        run = []
    return xs, ys


def prevalence_figure(frame: pd.DataFrame, *, series: str, title: str, labels: dict[Any, str], min_docs: int = 30,
                      unreliable: dict[Any, str] | None = None) -> Any:
    """Share per window of each series (topic or theme), one line per series, its 95 % interval as a band.

    Windows with fewer than ``min_docs`` documents in the community are gaps (no point: a share of 1 of 1
    doc says nothing); the y axis fits the points drawn. Series in ``unreliable`` (key: why) are dotted grey
    and say so in their name. Several communities: a menu picks the community shown (``all`` first)."""
    unreliable = unreliable or {}
    fig = _figure(title=title, yaxis_title="share of documents", height=500)
    communities = _by_size(frame, "hits") if frame["hits"].notna().any() else sorted(frame["community"].unique())
    if "all" in communities:
        communities = ["all"] + [c for c in communities if c != "all"]
    keys = sorted(frame[series].unique(), key=str)
    colours = dict(zip(keys, _palette(len(keys))))
    windows = sorted({str(v) for v in frame["window_label"]})
    owners = []
    for community in communities:
        for key, rows in frame[frame["community"] == community].groupby(series, sort=True):
            rows = rows.set_index(rows["window_label"].astype(str)).reindex(windows)
            shown = rows["total"] >= min_docs
            name = esc(labels.get(key, str(key)))
            colour = "#8a94a0" if key in unreliable else colours[key]
            if key in unreliable:
                name += f" ({esc(unreliable[key])})"
            visible = community == communities[0]
            if rows["low"].notna().any():
                band_x, band_y = _band(windows, rows["low"].where(shown), rows["high"].where(shown))
                fig.add_scatter(x=band_x, y=band_y, mode="lines", line={"width": 0}, fill="toself",
                                fillcolor=_rgba(colour, 0.15), hoverinfo="skip", showlegend=False, legendgroup=name,
                                visible=visible, connectgaps=False)
                owners.append(community)
            fig.add_scatter(x=windows, y=rows["share"].where(shown).round(5).tolist(), mode="lines+markers", name=name,
                            legendgroup=name, visible=visible, connectgaps=False, meta={"community": community},
                            line={"color": colour, "dash": "dot" if key in unreliable else "solid"},
                            marker={"color": colour}, customdata=rows[["hits", "total", "low", "high"]].round(4).values,
                            hovertemplate=name + "<br>%{x}: %{y:.1%} (95 % %{customdata[2]:.1%}–"
                                                 "%{customdata[3]:.1%}; %{customdata[0]} of %{customdata[1]} docs)"
                                                 "<extra></extra>")
            owners.append(community)
    _community_menu(fig, owners, communities, title)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
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

    event_of: dict[str, dict[tuple, str]] = {}
    if events is not None and not events.empty:
        for community, window, topic, event in zip(events["community"], events["window_label"], events["topic_id"],
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
