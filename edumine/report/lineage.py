"""The lineage view of the report: the story, not the graph.

Per scope (the whole corpus, ``all``, and each community; a switch above the view picks one):

- a timeline of the ``report.lineage_topics`` most changing topics (emerged, grew, split, merged, declined,
  faded): topics as rows, windows as columns, each cell shaded by the topic's share of the window with the
  event of that window marked by a letter; windows under ``report.min_window_docs`` documents are gaps;
  catch-all topics (low ``label_coverage``) share one "unclear / spam" row;
- small alluvial diagrams for the split / merge families only (drawn as plain SVG, one row per topic, so
  labels never run into each other).

Every topic name links to its detail block (``report_topics``). Plain HTML and SVG: the labels are laid out
by the browser's table and fixed rows, which is what keeps them readable at a hundred topics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from edumine.report.data import ALL
from edumine.report.html import esc, percent, short

CHANGE_EVENTS = ("emerged", "grew", "split", "merged", "declined", "faded")
EVENT_MARKS = {"emerged": ("E", "#2ca02c"), "grew": ("G", "#1f77b4"), "split": ("S", "#e07000"),
               "merged": ("M", "#9467bd"), "declined": ("D", "#d62728"), "faded": ("F", "#6b7580"),
               "persisted": ("", "")}
MAX_FAMILIES = 6
MAX_FAMILY_NODES = 6
MAX_LISTED = 40  # catch-all topics listed (and given detail blocks) under the unclear row


EVENT_COLUMNS = ("window_label", "community", "scope", "topic_id", "event", "related_topics", "from_window")


def normalise_events(events: pd.DataFrame | None) -> pd.DataFrame:
    """``topic_events``' EVENT_COLUMNS with ``related_topics`` as ``related``, a list of ints per row."""
    if events is None or events.empty:
        return pd.DataFrame(columns=["window_label", "community", "scope", "topic_id", "event", "related",
                                     "from_window"])
    events = events.copy()
    events["related"] = [[] if r is None or isinstance(r, float) else [int(t) for t in r]
                         for r in events.pop("related_topics")]
    return events


def topic_name(info: dict[int, dict[str, Any]], topic: int, limit: int = 40) -> str:
    row = info.get(int(topic))
    return short(f"#{topic} " + (row["name"] if row else "(not in the topics table)"), limit)


def rank_topics(events: pd.DataFrame, shares: pd.DataFrame, catch_all: set[int], n: int) -> list[int]:
    """The ``n`` topics with the most change events in this scope (ties: the larger topic first)."""
    changes = events[events["event"].isin(CHANGE_EVENTS)].groupby("topic_id").size()
    size = shares.groupby("topic_id")["hits"].sum() if not shares.empty else pd.Series(dtype=float)
    frame = pd.DataFrame({"changes": changes}).join(size.rename("size"), how="left").fillna(0)
    frame = frame[~frame.index.isin(catch_all) & (frame.index >= 0)]
    return [int(t) for t in frame.sort_values(["changes", "size"], ascending=False, kind="stable").index[:n]]


def _windows(shares: pd.DataFrame, events: pd.DataFrame) -> list[str]:
    if not shares.empty:
        order = shares.drop_duplicates("window_label").sort_values(["window_start", "window_label"])
        return order["window_label"].tolist()
    return sorted(events["window_label"].unique().tolist())


def _cell(window: str, total: Any, share: Any, low: Any, high: Any, hits: Any, peak: float, event: str,
          min_docs: int) -> str:
    if total is None or pd.isna(total) or total < min_docs:
        docs = "no docs" if total is None or pd.isna(total) or total == 0 else f"{int(total):,} docs"
        return f'<td class="gap" title="{esc(window)}: {docs}, under {min_docs}: not shown"></td>'
    shade = 0 if not peak or pd.isna(share) else 1 + min(9, int(9 * float(share) / peak))  # classes s0..s10
    interval = "" if pd.isna(low) or pd.isna(high) else f" ({percent(low)}–{percent(high)})"
    title = f"{window}: {percent(share)}{interval}, {int(hits or 0):,}/{int(total):,}"
    mark = ""
    if event and EVENT_MARKS.get(event, ("", ""))[0]:
        mark = f'<span class="ev e-{event}">{EVENT_MARKS[event][0]}</span>'
        title += f", {event}"
    return f'<td class="s{shade}" title="{esc(title)}">{mark}</td>'


def shade_style() -> str:
    """The cell shades (s0..s10) and event colours, once for the page rather than per cell."""
    shades = "".join(f"table.timeline td.s{i}{{background:rgba(29,53,87,{0.04 + 0.085 * i:.2f})}}" for i in range(11))
    return shades + "".join(f".ev.e-{e}{{background:{c}}}" for e, (letter, c) in EVENT_MARKS.items() if letter)


def timeline_table(scope: str, topics: list[int], shares: pd.DataFrame, events: pd.DataFrame,
                   info: dict[int, dict[str, Any]], catch_all: list[int], min_docs: int) -> str:
    windows = _windows(shares, events)
    sizes = dict(zip(shares["window_label"], shares["total"])) if not shares.empty else {}
    by_key = {(int(t), w): r for t, w, r in zip(shares["topic_id"], shares["window_label"],
                                                 shares[["share", "low", "high", "hits"]].itertuples(index=False))}
    event_of = {(int(t), w): e for t, w, e in zip(events["topic_id"], events["window_label"], events["event"])}
    head = "".join(f'<th class="w"><span>{esc(w)}</span></th>' for w in windows)
    rows = []
    for topic in topics:
        row = info.get(int(topic), {})
        peak = max((by_key[(topic, w)].share for w in windows if (topic, w) in by_key
                    and sizes.get(w, 0) >= min_docs), default=0.0)
        cells = "".join(_cell(w, sizes.get(w), *(
            (by_key[(topic, w)].share, by_key[(topic, w)].low, by_key[(topic, w)].high, by_key[(topic, w)].hits)
            if (topic, w) in by_key else (np.nan, np.nan, np.nan, 0)), peak, event_of.get((topic, w), ""), min_docs)
            for w in windows)
        label = (f'<a href="#topic-{topic}" class="name">{esc(topic_name(info, topic, 44))}</a>'
                 f'<span class="title">{esc(row.get("title") or "")}</span>')
        rows.append(f'<tr><th class="topic">{label}</th>{cells}<td class="peak">{percent(peak)}</td></tr>')
    if catch_all:
        unclear = shares[shares["topic_id"].isin(catch_all)].groupby("window_label").agg(
            hits=("hits", "sum"), share=("share", "sum"))
        peak = max((unclear.loc[w, "share"] for w in windows if w in unclear.index and sizes.get(w, 0) >= min_docs),
                   default=0.0)
        cells = "".join(_cell(w, sizes.get(w), unclear.loc[w, "share"] if w in unclear.index else np.nan,
                              np.nan, np.nan, unclear.loc[w, "hits"] if w in unclear.index else 0, peak, "",
                              min_docs) for w in windows)
        links = ", ".join(f'<a href="#topic-{t}">#{t}</a>' for t in catch_all[:MAX_LISTED])
        more = f" and {len(catch_all) - MAX_LISTED} more" if len(catch_all) > MAX_LISTED else ""
        rows.append(f'<tr class="unclear"><th class="topic"><details><summary class="name">unclear / spam '
                    f'({len(catch_all)} topics)</summary><span class="list">{links}{more}</span></details></th>'
                    f'{cells}<td class="peak">{percent(peak)}</td></tr>')
    return (f'<div class="timeline-wrap"><table class="timeline" data-scope="{esc(scope)}"><thead><tr>'
            f'<th class="topic">topic</th>{head}<th class="peak">peak</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def legend(min_docs: int) -> str:
    marks = "".join(f'<span class="item"><span class="ev e-{e}">{letter}</span>{esc(e)}</span>'
                    for e, (letter, _) in EVENT_MARKS.items() if letter)
    return (f'<p class="legend">{marks}<span class="item"><span class="swatch"></span>darker: larger share of the '
            f'window (relative to the topic\'s peak, shown at the right)</span><span class="item">'
            f'<span class="swatch gap"></span>window under {min_docs} docs: not shown</span></p>')


# -- split / merge families ------------------------------------------------------------------------------
def families(events: pd.DataFrame, lineage: pd.DataFrame, shown: list[int]) -> list[dict[str, Any]]:
    """Groups of edges between two windows around split / merge events (largest first): the event's topics
    with their predecessors and those predecessors' successors. Events of the topics ``shown`` in the
    timeline come first; at most ``MAX_FAMILIES``."""
    candidates = events[events["event"].isin(("split", "merged"))]
    candidates = candidates.assign(other=~candidates["topic_id"].isin(shown)).sort_values(
        ["other", "window_label"], kind="stable").head(10 * MAX_FAMILIES)
    by_window = {str(w): g for w, g in lineage.groupby(lineage["to_window"].astype(str))}
    found: dict[tuple, dict[str, Any]] = {}
    for record in candidates.itertuples(index=False):
        edges = by_window.get(record.window_label)
        if edges is None:
            continue
        right: set[int] = {int(record.topic_id)} | set(record.related if record.event == "split" else [])
        left = set(record.related) if record.event == "merged" else set()
        left |= set(edges.loc[edges["to_topic"].isin(right), "from_topic"].astype(int))
        right |= set(edges.loc[edges["from_topic"].isin(left), "to_topic"].astype(int))
        linked = edges[edges["to_topic"].isin(right) & edges["from_topic"].isin(left)]
        if linked.empty or (linked["from_topic"].nunique() < 2 and linked["to_topic"].nunique() < 2):
            continue
        linked = linked.nlargest(3 * MAX_FAMILY_NODES, "similarity")
        key = (record.window_label, frozenset(linked["from_topic"]), frozenset(linked["to_topic"]))
        found.setdefault(key, {"to_window": record.window_label, "from_window": str(linked["from_window"].iloc[0]),
                               "edges": linked, "events": set()})["events"].add(record.event)
    ordered = sorted(found.values(), key=lambda f: (-len(f["edges"]), f["to_window"]))
    return ordered[:MAX_FAMILIES]


def family_svg(family: dict[str, Any], info: dict[int, dict[str, Any]]) -> str:
    edges = family["edges"]
    left = list(dict.fromkeys(edges.sort_values("from_topic")["from_topic"].astype(int)))[:MAX_FAMILY_NODES]
    right = list(dict.fromkeys(edges.sort_values("to_topic")["to_topic"].astype(int)))[:MAX_FAMILY_NODES]
    row, top = 26, 28
    height = top + row * max(len(left), len(right)) + 6
    y_left = {t: top + row * i + row / 2 for i, t in enumerate(left)}
    y_right = {t: top + row * i + row / 2 for i, t in enumerate(right)}
    parts = [f'<text x="300" y="16" text-anchor="end" class="wl">{esc(family["from_window"])}</text>',
             f'<text x="420" y="16" class="wl">{esc(family["to_window"])}</text>']
    for record in edges.itertuples(index=False):
        a, b = y_left.get(int(record.from_topic)), y_right.get(int(record.to_topic))
        if a is None or b is None:
            continue
        width = 2 + 8 * max(0.0, min(1.0, float(record.similarity)))
        parts.append(f'<path d="M312 {a:.1f} C360 {a:.1f} 360 {b:.1f} 408 {b:.1f}" class="link" '
                     f'stroke-width="{width:.1f}"><title>similarity {float(record.similarity):.2f}</title></path>')
    for topic, y in y_left.items():
        parts.append(f'<rect x="304" y="{y - 8:.1f}" width="8" height="16" class="node"/>'
                     f'<a href="#topic-{topic}"><text x="298" y="{y + 4:.1f}" text-anchor="end">'
                     f'{esc(topic_name(info, topic, 40))}</text></a>')
    for topic, y in y_right.items():
        parts.append(f'<rect x="408" y="{y - 8:.1f}" width="8" height="16" class="node"/>'
                     f'<a href="#topic-{topic}"><text x="422" y="{y + 4:.1f}">{esc(topic_name(info, topic, 40))}'
                     f'</text></a>')
    what = " and ".join(sorted(family["events"]))
    return (f'<figure class="family"><figcaption>{esc(what)}: {esc(family["from_window"])} → '
            f'{esc(family["to_window"])}</figcaption><svg viewBox="0 0 720 {height}" width="720" height="{height}" '
            f'role="img">{"".join(parts)}</svg></figure>')


# -- the view ---------------------------------------------------------------------------------------------
def lineage_view(events: pd.DataFrame, lineage: pd.DataFrame | None, shares: pd.DataFrame,
                 topics: pd.DataFrame, *, n_topics: int, min_docs: int) -> tuple[str, set[int]]:
    """The view's HTML and the topics it names (for their detail blocks)."""
    info = {int(r["topic_id"]): r for r in topics.to_dict("records")} if not topics.empty else {}
    catch_all = sorted(int(t) for t in topics.loc[topics["catch_all"].astype(bool), "topic_id"]) \
        if not topics.empty else []
    scopes = [ALL] + sorted(set(events["community"]) - {ALL}) if not events.empty else [ALL]
    named: set[int] = set()
    blocks, options = [], []
    for scope in scopes:
        scope_events = events[events["community"] == scope]
        scope_shares = shares[shares["community"] == scope] if not shares.empty else shares
        if scope_events.empty:
            continue
        chosen = rank_topics(scope_events, scope_shares, set(catch_all), n_topics)
        named.update(chosen)
        present = set(scope_shares.loc[scope_shares["hits"] > 0, "topic_id"]) if not scope_shares.empty else set()
        in_scope = [t for t in catch_all if t in present]
        named.update(in_scope[:MAX_LISTED])  # the unclear row links these
        body = timeline_table(scope, chosen, scope_shares, scope_events, info, in_scope, min_docs)
        scope_lineage = lineage[lineage["community"] == scope] if lineage is not None else None
        family_list = families(scope_events, scope_lineage, chosen) if scope_lineage is not None else []
        for family in family_list:
            named.update(int(t) for t in family["edges"]["from_topic"])
            named.update(int(t) for t in family["edges"]["to_topic"])
        split_merge = ("<h4>Split and merge families</h4>" + "".join(family_svg(f, info) for f in family_list)
                       if family_list else '<p class="note">No topic split or merged in this scope.</p>')
        label = "all communities" if scope == ALL else scope
        changes = int(scope_events["event"].isin(CHANGE_EVENTS).sum())
        options.append(f'<option value="{esc(scope)}"{" selected" if not options else ""}>{esc(label)} '
                       f'({changes:,} changes)</option>')
        hidden = "" if len(blocks) == 0 else " hidden"
        blocks.append(f'<div class="scope" data-scope="{esc(scope)}"{hidden}>'
                      f'<p class="note">{len(chosen)} most changing topics in {esc(label)} (of '
                      f'{scope_events["topic_id"].nunique():,} with events); catch-all topics in one row.</p>'
                      f"{body}{split_merge}</div>")
    switch = ""
    if len(options) > 1:
        switch = ('<p class="switch"><label>Community: <select data-switch="lineage">' + "".join(options)
                  + "</select></label></p>")
    return (f'<style>{shade_style()}</style><div class="lineage-view">{switch}{legend(min_docs)}{"".join(blocks)}'
            "</div>", named)
