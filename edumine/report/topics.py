"""Topic detail blocks: top terms, representative posts (pseudonymised text, as the lake holds it), prevalence
over the windows with its 95 % interval (a small inline SVG: band, line, gaps for windows under the minimum)
and the topic's events. The lineage view and the prevalence chart link here (``#topic-<id>``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from edumine.report.data import ALL
from edumine.report.html import esc, percent, short

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 560, 120, 46, 20, 8


def sparkline(rows: pd.DataFrame, windows: list[str], min_docs: int) -> str:
    """Share per window with its interval as a band; windows under ``min_docs`` are gaps (grey ticks)."""
    if rows.empty or not windows:
        return '<p class="note">No prevalence for this topic.</p>'
    # one dict per window: a pandas lookup per value cost seconds over a report's topics at 100 k docs
    rows = {record["window_label"]: record for record in rows.to_dict("records")}
    valid = [w for w in windows if w in rows and rows[w]["total"] >= min_docs]
    top = max([float(rows[w]["high"]) if pd.notna(rows[w]["high"]) else float(rows[w]["share"])
               for w in valid] or [0.0]) or 0.01
    step = (WIDTH - LEFT - 10) / max(len(windows) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(v: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - v / top)

    parts = [f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - 10}" y2="{y(0):.1f}" class="axis"/>',
             f'<text x="{LEFT - 4}" y="{y(top) + 4:.1f}" text-anchor="end">{percent(top, 1)}</text>',
             f'<text x="{LEFT - 4}" y="{y(0) + 4:.1f}" text-anchor="end">0 %</text>',
             f'<text x="{LEFT}" y="{HEIGHT - 4}">{esc(windows[0])}</text>',
             f'<text x="{WIDTH - 10}" y="{HEIGHT - 4}" text-anchor="end">{esc(windows[-1])}</text>']
    run: list[int] = []
    runs = []
    for i, w in enumerate(windows):
        if w in valid:
            run.append(i)
        else:
            if run:
                runs.append(run)
            run = []
            left, right = max(LEFT, x(i) - step / 2), min(WIDTH - 10, x(i) + step / 2)
            parts.append(f'<rect x="{left:.1f}" y="{TOP}" width="{right - left:.1f}" height="{HEIGHT - TOP - BOTTOM}"'
                         f' class="gap"><title>{esc(w)}: under {min_docs} docs, not shown</title></rect>')
    if run:
        runs.append(run)
    for run in runs:
        lows = [rows[windows[i]]["low"] for i in run]
        highs = [rows[windows[i]]["high"] for i in run]
        if all(pd.notna(v) for v in lows + highs):
            band = [f"{x(i):.1f},{y(float(h)):.1f}" for i, h in zip(run, highs)]
            band += [f"{x(i):.1f},{y(float(lo)):.1f}" for i, lo in reversed(list(zip(run, lows)))]
            parts.append(f'<polygon points="{" ".join(band)}" class="band"/>')
        line = " ".join(f"{x(i):.1f},{y(float(rows[windows[i]]['share'])):.1f}" for i in run)
        parts.append(f'<polyline points="{line}" class="line"><title>{esc(windows[run[0]])}–{esc(windows[run[-1]])}: '
                     f'peak {percent(max(float(rows[windows[i]]["share"]) for i in run))}</title></polyline>')
        if len(run) == 1:  # a lone window: a line cannot show it
            r = rows[windows[run[0]]]
            parts.append(f'<circle cx="{x(run[0]):.1f}" cy="{y(float(r["share"])):.1f}" r="2.5" class="pt"/>')
    return f'<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">{"".join(parts)}</svg>'


def event_summary(events: pd.DataFrame | None, limit: int = 24) -> str:
    """The topic's changes over the whole corpus, one short item each, and how many per community."""
    if events is None or events.empty:
        return '<p class="note">No events recorded.</p>'
    changes = events[events["event"] != "persisted"]
    corpus = changes[changes["community"] == ALL].sort_values("window_label")
    items = [f"{esc(w)} {esc(e)}" + (f" ({', '.join(f'#{t}' for t in r[:5])})" if len(r) else "")
             for w, e, r in zip(corpus["window_label"], corpus["event"], corpus["related"])]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    text = (" · ".join(items[:limit]) + more) if items else "no change over the whole corpus"
    per_community = changes[changes["community"] != ALL].groupby("community").size().sort_values(ascending=False)
    communities = ", ".join(f"{esc(c)} {n}" for c, n in per_community.head(12).items())
    return (f'<p class="events">All communities: {text}.</p>'
            + (f'<p class="note">Changes within communities: {communities}.</p>' if communities else ""))


def detail_blocks(topic_ids: set[int], topics: pd.DataFrame, shares: pd.DataFrame, events: pd.DataFrame,
                  min_docs: int) -> str:
    """One block per topic in ``topic_ids`` (ordered by id), prevalence over the whole corpus."""
    if not topic_ids:
        return '<p class="note">No topic is named in the lineage view.</p>'
    info = {int(r["topic_id"]): r for r in topics.to_dict("records")} if not topics.empty else {}
    corpus = shares[shares["community"] == ALL] if not shares.empty else shares
    windows = (corpus.drop_duplicates("window_label").sort_values(["window_start", "window_label"])["window_label"]
               .tolist() if not corpus.empty else [])
    by_topic = {int(t): g for t, g in events[events["topic_id"].isin(topic_ids)].groupby("topic_id")} \
        if not events.empty else {}
    shares_of = {int(t): g for t, g in corpus[corpus["topic_id"].isin(topic_ids)].groupby("topic_id")} \
        if not corpus.empty else {}
    blocks = []
    for topic in sorted(topic_ids):
        row: dict[str, Any] = info.get(topic, {})
        terms = ", ".join(row.get("terms") or []) or "(no terms)"
        coverage = row.get("coverage")
        flags = []
        if row.get("catch_all"):
            flags.append('<span class="flag">unclear / spam: few of its posts use its label words</span>')
        meta = [f"{int(row['size']):,} docs" if row.get("size") is not None and pd.notna(row.get("size")) else "",
                f"label coverage {coverage:.2f}" if coverage is not None else ""]
        posts = "".join(f"<li>{esc(short(text, 280))}</li>" for text in row.get("docs") or [])
        table = event_summary(by_topic.get(topic))
        line = sparkline(shares_of.get(topic, corpus.iloc[:0]), windows, min_docs) if not corpus.empty else ""
        blocks.append(
            f'<div class="topic-detail" id="topic-{topic}"><h3>#{topic} {esc(terms)} {"".join(flags)}</h3>'
            f'<p class="note">{esc(" · ".join(m for m in meta if m))}</p>'
            f"<h4>Representative posts</h4>{'<ol class=posts>' + posts + '</ol>' if posts else '<p class=note>None stored.</p>'}"
            f"<h4>Share of all communities' docs per window (95 % interval as a band)</h4>{line}"
            f"<h4>Events</h4>{table}</div>")
    return "".join(blocks)
