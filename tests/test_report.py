"""The HTML report: sections, escaping, missing tables, Prefect artifacts, the final run status, and a real
headless Chromium that looks at the page as a person would (labels that overlap, points drawn from windows
too small to mean anything, the status shown) and saves a screenshot of every section."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from summary_fixtures import SCRIPT_TITLE, collect_lake, copy_lake, lake_sources, write_model_tables

MIN_DOCS = 30
SECTIONS = ("provenance", "trust", "activity", "topics", "lineage", "topic-details", "themes", "crosstab", "threads")


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """'bare': collect + metrics + store + report; 'full': the same run over a lake that also holds topic,
    lineage and theme tables. Both reports are written by real pipeline runs (so they close as runs do)."""
    from conftest import make_config
    from edumine.pipelines.runner import run_pipeline

    base = tmp_path_factory.mktemp("report")
    bare = collect_lake(base / "bare", base / "extra", small_window=True)
    run_pipeline(bare, only=["metrics", "store", "report"])
    full = copy_lake(base / "bare", base / "full")
    write_model_tables(full)
    run_pipeline(make_config(full, lake_sources(base / "extra", True)), only=["metrics", "store", "report"])
    return {"bare": base / "bare", "full": full}


@pytest.fixture(scope="module")
def full_report(lakes: dict[str, Path]) -> dict:
    from edumine.report.build import build_report, latest_manifest

    # Beside the lake: the report the pipeline run wrote into the lake stays as the run left it.
    return build_report(lakes["full"], manifest=latest_manifest(lakes["full"]),
                        out=lakes["full"].parent / "full-report.html")


def test_every_section_draws_from_the_full_lake_and_user_text_is_escaped(full_report: dict) -> None:
    assert full_report["sections"] == {key: "ok" for key in SECTIONS}
    assert full_report["charts"] == 6  # three of activity, topic and theme prevalence, topics x themes
    page = Path(full_report["path"]).read_text(encoding="utf-8")
    assert SCRIPT_TITLE not in page and 'document.title="pwned"' not in page
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page  # the thread's title, as text
    assert page.count("<script") == 2 + full_report["charts"]  # plotly, the loader, one data block per chart
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page), "the page must load nothing"
    assert "Plotly" in page and len(page) > 3_000_000  # plotly.js inlined


def test_quality_marks_catch_all_topics_and_unreliable_themes(full_report: dict) -> None:
    page = Path(full_report["path"]).read_text(encoding="utf-8")
    lineage = page[page.index('<section id="lineage"'):page.index('<section id="topic-details"')]
    assert "unclear / spam (1 topics)" in lineage and 'href="#topic-3"' in lineage  # folded, still reachable
    assert '<a href="#topic-3" class="name">' not in lineage  # not a row of its own
    assert 'id="topic-3"' in page and "few of its posts use its label words" in page
    themes = page[page.index('<section id="themes"'):page.index('<section id="crosstab"')]
    assert "unreliable: F1 0.00" in themes and "Emotional Support" in themes
    trust = page[page.index('<section id="trust"'):page.index('<section id="activity"')]
    for measure in ("NPMI", "diversity", "Outliers", "Catch-all topics", "Theme F1", "Calibration"):
        assert measure in trust
    assert "1 of 3 themes under the floor" in trust


def test_missing_tables_are_reported_not_fatal(lakes: dict[str, Path]) -> None:
    page = (lakes["bare"] / "report.html").read_text(encoding="utf-8")
    for table, stage in (("topic_prevalence", "topics"), ("topic_events", "lineage"),
                         ("theme_prevalence", "themes"), ("doc_topics", "topics")):
        assert f"no <code>{table}</code>" in page and f"The {stage}" in page
    assert page.count('data-status="missing"') == 5  # topics, lineage, topic details, themes, topics x themes
    assert 'data-status="error"' not in page


def test_the_report_and_the_store_carry_the_runs_final_status(lakes: dict[str, Path]) -> None:
    """Regression: the report and store stages run before the run closes and showed `running`."""
    import duckdb

    for lake in lakes.values():
        from edumine.report.build import latest_manifest

        manifest = latest_manifest(lake)  # the run that started last (two can start in one second)
        assert manifest["status"] == "completed"
        page = (lake / "report.html").read_text(encoding="utf-8")
        assert f"<title>edumine report {manifest['run_id']}</title>" in page
        assert 'status <b class="status">completed</b>' in page and 'data-status="completed"' in page
        assert "running" not in page[page.index('<section id="provenance"'):page.index('<section id="trust"')]
        con = duckdb.connect(str(lake / "summary.duckdb"), read_only=True)
        try:
            status, finished = con.execute("SELECT status, finished_at FROM runs WHERE run_id = ?",
                                            [manifest["run_id"]]).fetchone()
        finally:
            con.close()
        assert status == "completed" and finished is not None


def test_prefect_artifacts_only_inside_a_run(lakes: dict[str, Path]) -> None:
    from edumine.report.build import publish_artifacts, run_markdown

    summary = {"path": "report.html", "charts": 1, "sections": {"activity": "ok"}}
    assert publish_artifacts(summary, None, None) == []  # outside a flow run: nothing, no error
    text = run_markdown(summary, {"run_id": "r1", "config_hash": "abc", "totals": {"records": 5},
                                  "scores": {"topics": {"npmi": 0.05}}})
    assert "| topics.npmi | 0.05 |" in text and "`abc`" in text


def test_lineage_tables_count_the_whole_corpus_once(lakes: dict[str, Path], tmp_path: Path) -> None:
    """Regression: events are written for community 'all' and per community; the tables must not mix them."""
    from edumine.report.build import build_report
    from fixtures_catalog import write_table

    lake = copy_lake(lakes["full"], tmp_path / "lake")
    write_table(lake, "topic_events", {
        "window_label": ["2018H1"] * 3, "community": ["all", "all", "teachingresources"],
        "scope": ["all", "all", "community"], "topic_id": [0, 1, 98765], "event": ["persisted", "grew", "faded"],
        "related_topics": [[0], [1], []], "score": [0.9, 0.8, 0.7]})
    page = Path(build_report(lake)["path"]).read_text(encoding="utf-8")
    lineage = page[page.index('<section id="lineage"'):page.index('<section id="topic-details"')]
    counts = lineage[lineage.index("<details class=\"tables\">"):]
    assert "grew" in counts and "faded" not in counts  # the per-community 'faded' is not counted again
    assert "98,765" not in counts and "98765" not in counts


def test_prevalence_chart_draws_more_series_than_one_palette_has() -> None:
    """Regression: past ten series the palette switches to rgb() strings, which the band colour could not
    read (the section failed)."""
    import pandas as pd

    from edumine.report.charts import prevalence_figure

    frame = pd.DataFrame([{"window_label": w, "community": "all", "topic": t, "share": 0.05, "hits": 5, "total": 100,
                           "low": 0.03, "high": 0.08} for w in ("2018H1", "2018H2") for t in range(14)])
    figure = prevalence_figure(frame, series="topic", title="t", labels={}, min_docs=30)
    bands = [trace.fillcolor for trace in figure.data if trace.fill == "toself"]
    assert len(bands) == 14 and all(colour.startswith("rgba(") for colour in bands)
