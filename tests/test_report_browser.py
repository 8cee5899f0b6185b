"""The report in a real headless Chromium, checked as a person would read it: every chart draws with nothing
on the console, no two labels of the lineage view overlap (bounding boxes from the DOM, in every community
of the switch), no prevalence point comes from a window under the minimum size, the status reads
`completed`. Every section is saved as a screenshot (under pytest's tmp dir; EDUMINE_REPORT_SCREENSHOTS=DIR
copies them there). On a dense lineage the old Sankey view fails the overlap check and the timeline passes."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from browser import TEXT_BOXES_JS, Page, chromium, overlapping
from fixtures_catalog import write_table
from summary_fixtures import copy_lake
from test_report import MIN_DOCS, SECTIONS, lakes  # noqa: F401  (a fixture)

# Points drawn by plotly in the prevalence charts, for every community of the chart's menu:
# [{chart, community, window}] read from the SVG (each marker's position mapped back to its x category).
DRAWN_POINTS_JS = r"""
(async () => {
  const out = [];
  for (const div of document.querySelectorAll('.chart[data-kind$="prevalence"]')) {
    const menus = (div.layout.updatemenus || [])[0];
    const choices = menus ? menus.buttons : [null];
    for (const button of choices) {
      if (button) { await Plotly.update(div, button.args[0], button.args[1]); }
      const xa = div._fullLayout.xaxis;
      div._fullData.forEach((trace) => {
        if (trace.visible !== true || !String(trace.mode).includes('markers')) return;
        const group = div.querySelector('.scatterlayer .trace' + trace.uid);
        if (!group) return;
        group.querySelectorAll('path.point').forEach((point) => {
          const m = /translate\(([-\d.e]+),\s*([-\d.e]+)\)/.exec(point.getAttribute('transform') || '');
          if (!m) return;
          out.push({chart: div.getAttribute('data-kind'), community: (trace.meta || {}).community,
                    window: xa._categories[Math.round(xa.p2c(parseFloat(m[1])))]});
        });
      });
    }
  }
  return out;
})()
"""


def _window_sizes(lake: Path) -> dict[tuple[str, str, str], int]:
    """(chart kind, community, window) -> docs in that window, from the lake's prevalence tables."""
    import duckdb

    sizes = {}
    for kind, table, total in (("topic-prevalence", "topic_prevalence", "total_docs"),
                               ("theme-prevalence", "theme_prevalence", "docs")):
        frame = duckdb.sql(f"SELECT window_label, community, max({total}) AS n FROM "
                           f"read_parquet('{lake / table}/*.parquet') GROUP BY ALL").df()
        for window, community, n in frame.itertuples(index=False):
            sizes[(kind, community, window)] = int(n)
        for window, n in frame.groupby("window_label")["n"].sum().items():
            sizes[(kind, "all", window)] = int(n)
    return sizes


def _lineage_overlaps(page: Page) -> list[tuple[str, str]]:
    """Overlapping text in the lineage view, for every community the switch offers."""
    scopes = page.evaluate("Array.from(document.querySelectorAll('select[data-switch] option')).map(o => o.value)")
    found = []
    for scope in scopes or [None]:
        if scope is not None:
            page.evaluate(f"(() => {{ const s = document.querySelector('select[data-switch]'); s.value = {scope!r};"
                          " s.dispatchEvent(new Event('change')); return true; })()")
        boxes = page.evaluate(f"({TEXT_BOXES_JS})(document.querySelector('#lineage .lineage-view'))")
        assert boxes, "the lineage view drew no text"
        found += overlapping(boxes)
    return found


def _open(report: Path, profile: Path) -> Page:
    chromium()
    page = Page(report.as_uri(), profile)
    page.wait_for("document.body && document.body.hasAttribute('data-charts-rendered')")
    return page


def _keep(shots: list[Path], name: str) -> None:
    keep = os.environ.get("EDUMINE_REPORT_SCREENSHOTS")
    if keep:
        target = Path(keep) / name
        target.mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, target / shot.name)
        print(f"screenshots: {target}")
    print(f"screenshots: {shots[0].parent}")


def test_report_as_a_person_sees_it(lakes: dict[str, Path], tmp_path: Path) -> None:
    """The report exactly as the pipeline run left it in the lake."""
    from edumine.report.build import latest_manifest

    charts = latest_manifest(lakes["full"])["outputs"]["report"]["charts"]
    page = _open(lakes["full"] / "report.html", tmp_path / "profile")
    try:
        assert page.console == [], "the page logged to the console"
        assert page.evaluate("document.body.getAttribute('data-charts-rendered')") == str(charts)
        assert page.evaluate("document.querySelectorAll('[data-rendered=yes]').length") == charts
        assert page.evaluate("document.title").startswith("edumine report"), "user text ran as markup"
        assert page.evaluate("document.querySelector('header b.status').textContent") == "completed"
        assert page.evaluate("document.querySelector('.run-status').getAttribute('data-status')") == "completed"
        assert page.evaluate("document.querySelectorAll('.timeline tbody tr').length") >= 3

        shots = [page.screenshot(f"#{key}", tmp_path / "screens" / f"{i}-{key}.png")
                 for i, key in enumerate(SECTIONS)]
        assert all(s.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and s.stat().st_size > 5_000 for s in shots)
        _keep(shots, "fixture")

        assert _lineage_overlaps(page) == []
        points = page.evaluate(DRAWN_POINTS_JS)
        sizes = _window_sizes(lakes["full"])
        assert {p["chart"] for p in points} == {"topic-prevalence", "theme-prevalence"}
        assert {p["community"] for p in points} >= {"all", "teachingresources", "teaching"}
        small = [p for p in points if sizes[(p["chart"], p["community"], p["window"])] < MIN_DOCS]
        assert small == [], f"points drawn from windows under {MIN_DOCS} docs"
        assert any(size < MIN_DOCS for size in sizes.values()), "the fixture must hold a small window"
    finally:
        page.close()


def dense_lineage(lake: Path, topics: int = 60, windows: int = 12, seed: int = 0) -> None:
    """A lineage the size of a real corpus (60 topics over 12 semesters, splits and merges), so the views
    have as many labels as the demo's."""
    rng = np.random.default_rng(seed)
    labels = [f"{2012 + w // 2}H{w % 2 + 1}" for w in range(windows)]
    starts = [date(2012 + w // 2, 1 if w % 2 == 0 else 7, 1) for w in range(windows)]
    words = ["lesson", "grading", "parents", "classroom", "behaviour", "reading", "math", "science", "union",
             "salary", "admin", "covid", "remote", "tech", "art", "music", "special", "needs", "testing", "career"]
    write_table(lake, "topics", pd.DataFrame({
        "topic_id": range(topics), "label": [f"{t}_{words[t % 20]}_{words[(3 * t) % 20]}" for t in range(topics)],
        "top_terms": [[words[t % 20], words[(3 * t + 1) % 20], words[(7 * t + 2) % 20]] for t in range(topics)],
        "size": rng.integers(50, 900, topics), "label_coverage": np.where(np.arange(topics) % 13 == 5, 0.05, 0.5),
        "representative_docs": [[f"How do you handle {words[t % 20]} with a class of thirty?"] for t in range(topics)]}))
    totals = rng.integers(300, 900, windows)
    prevalence = pd.DataFrame([(starts[w], labels[w], "teaching", t, int(n), int(totals[w]))
                               for w in range(windows) for t, n in enumerate(rng.multinomial(
                                   totals[w], rng.dirichlet(np.ones(topics))))],
                              columns=["window_start", "window_label", "community", "topic_id", "docs", "total_docs"])
    prevalence["share"] = prevalence["docs"] / prevalence["total_docs"]
    prevalence["share_low"], prevalence["share_high"] = prevalence["share"] * 0.7, prevalence["share"] * 1.3
    write_table(lake, "topic_prevalence", prevalence)
    edges, events = [], []
    events_cycle = ["persisted", "grew", "declined", "split", "merged", "emerged", "faded"]
    for w in range(1, windows):
        for t in range(topics):
            other = (t + 7 * w) % topics
            edges.append((labels[w - 1], t, labels[w], t, float(rng.uniform(0.75, 1))))
            if (t + w) % 5 == 0:
                edges.append((labels[w - 1], t, labels[w], other, float(rng.uniform(0.75, 0.9))))
            event = events_cycle[(t * 3 + w) % len(events_cycle)]
            events.append((labels[w], t, event, [other] if event in ("split", "merged") else [], labels[w - 1]))
    lineage = pd.DataFrame(edges, columns=["from_window", "from_topic", "to_window", "to_topic", "similarity"])
    write_table(lake, "topic_lineage", pd.concat([lineage.assign(community="all"),
                                                  lineage.assign(community="teaching")]))
    frame = pd.DataFrame(events, columns=["window_label", "topic_id", "event", "related_topics", "from_window"])
    write_table(lake, "topic_events", pd.concat([frame.assign(community="all", scope="all"),
                                                 frame.assign(community="teaching", scope="community")]))


def test_old_sankey_labels_overlap_and_the_timeline_labels_do_not(lakes: dict[str, Path], tmp_path: Path) -> None:
    from edumine.report.build import ReportSettings, build_report

    lake = copy_lake(lakes["full"], tmp_path / "dense")
    dense_lineage(lake)
    found = {}
    shots = []
    for view in ("sankey", "timeline"):
        report = build_report(lake, out=tmp_path / f"{view}.html", settings=ReportSettings(lineage_view=view))
        assert report["sections"]["lineage"] == "ok"
        page = _open(Path(report["path"]), tmp_path / f"profile-{view}")
        try:
            found[view] = _lineage_overlaps(page) if view == "timeline" else overlapping(page.evaluate(
                f"({TEXT_BOXES_JS})(document.querySelector('#lineage .lineage-view'))"))
            shots.append(page.screenshot("#lineage", tmp_path / "screens-dense" / f"lineage-{view}.png"))
        finally:
            page.close()
    _keep(shots, "dense")
    assert len(found["sankey"]) > 10, "the old Sankey should draw overlapping labels on a dense lineage"
    assert found["timeline"] == [], found["timeline"][:10]


def test_the_point_check_sees_points_from_small_windows(lakes: dict[str, Path], tmp_path: Path) -> None:
    """The check above can fail: with a minimum of 1 doc the small window's points are drawn, and found."""
    from edumine.report.build import ReportSettings, build_report

    report = build_report(lakes["full"], out=tmp_path / "every-window.html", settings=ReportSettings(min_window_docs=1))
    page = _open(Path(report["path"]), tmp_path / "profile")
    try:
        points = page.evaluate(DRAWN_POINTS_JS)
    finally:
        page.close()
    sizes = _window_sizes(lakes["full"])
    small = {(p["chart"], p["community"], p["window"]) for p in points
             if sizes[(p["chart"], p["community"], p["window"])] < MIN_DOCS}
    assert ("topic-prevalence", "teachingresources", "2016H2") in small
    assert ("topic-prevalence", "all", "2016H2") in small
