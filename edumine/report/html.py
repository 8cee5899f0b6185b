"""HTML pieces of the report: escaping, tables, notes for missing tables, sections and embedded charts."""

from __future__ import annotations

import html
import json
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MAKERS = {"community_activity": "metrics", "topics": "topics", "topic_prevalence": "topics",
          "doc_topics": "topics", "topic_lineage": "lineage", "topic_events": "lineage",
          "theme_prevalence": "themes", "doc_themes": "themes", "posts": "collect"}


def esc(value: Any) -> str:
    """Text for HTML (content and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def short(text: Any, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(str("" if text is None else text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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

    def embed(self, fig: Any, kind: str = "") -> str:
        self.count += 1
        chart_id = f"chart-{self.count}"
        data = fig.to_json().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        kind_attr = f' data-kind="{esc(kind)}"' if kind else ""
        return (f'<div class="chart" id="{chart_id}"{kind_attr}></div>'
                f'<script type="application/json" data-figure="{chart_id}">{data}</script>')


def missing(*names: str) -> str:
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


def percent(value: Any, digits: int = 1) -> str:
    if value is None or pd.isna(value):
        return "unknown"
    return f"{100 * float(value):.{digits}f} %"
