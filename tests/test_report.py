"""The HTML report: sections, escaping, missing tables, Prefect artifacts, and a real headless Chromium
that must draw every chart without a console message."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from summary_fixtures import SCRIPT_TITLE, collect_lake, copy_lake, write_model_tables

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000"]


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """'bare': collect + metrics + store only; 'full': the same plus topic, lineage and theme tables."""
    from edumine.pipelines.runner import run_pipeline
    from edumine.store import build_store

    base = tmp_path_factory.mktemp("report")
    run_pipeline(collect_lake(base / "bare", base / "extra"), only=["metrics", "store", "report"])
    full = copy_lake(base / "bare", base / "full")
    write_model_tables(full)
    build_store(full)
    return {"bare": base / "bare", "full": full}


@pytest.fixture(scope="module")
def full_report(lakes: dict[str, Path]) -> dict:
    from edumine.report import build_report

    return build_report(lakes["full"])


def test_every_section_draws_from_the_full_lake_and_user_text_is_escaped(full_report: dict) -> None:
    assert full_report["sections"] == {"provenance": "ok", "activity": "ok", "topics": "ok", "lineage": "ok",
                                       "themes": "ok", "crosstab": "ok", "threads": "ok"}
    assert full_report["charts"] == 7  # three of activity, topics, lineage, themes, topics x themes
    page = Path(full_report["path"]).read_text(encoding="utf-8")
    assert SCRIPT_TITLE not in page and 'document.title="pwned"' not in page
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page  # the thread's title, as text
    assert page.count("<script") == 2 + full_report["charts"]  # plotly, the loader, one data block per chart
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page), "the page must load nothing"
    assert "Plotly" in page and len(page) > 3_000_000  # plotly.js inlined


def test_missing_tables_are_reported_not_fatal(lakes: dict[str, Path]) -> None:
    page = (lakes["bare"] / "report.html").read_text(encoding="utf-8")
    for table, stage in (("topic_prevalence", "topics"), ("topic_lineage", "lineage"),
                         ("theme_prevalence", "themes"), ("doc_topics", "topics")):
        assert f"no <code>{table}</code>" in page and f"The {stage}" in page
    assert page.count('data-status="missing"') == 4
    assert 'data-status="error"' not in page


def test_prefect_artifacts_only_inside_a_run(lakes: dict[str, Path]) -> None:
    from edumine.report import publish_artifacts, run_markdown

    summary = {"path": "report.html", "charts": 1, "sections": {"activity": "ok"}}
    assert publish_artifacts(summary, None, None) == []  # outside a flow run: nothing, no error
    text = run_markdown(summary, {"run_id": "r1", "config_hash": "abc", "totals": {"records": 5},
                                  "scores": {"topics": {"npmi": 0.05}}})
    assert "| topics.npmi | 0.05 |" in text and "`abc`" in text


# -- a real browser ------------------------------------------------------------------------------
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode != 0:
                pytest.skip(f"chromium is not installed and `{' '.join(command)}` failed: {done.stderr.strip()[-300:]}")
        if shutil.which("chromium"):
            return shutil.which("chromium")  # type: ignore[return-value]
    pytest.skip("no chromium: install the Debian packages chromium and chromium-driver (.ci/run does)")


def _render(browser: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    profile.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                              capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"chromium could not be started: {exc}")


def test_report_draws_in_headless_chromium(full_report: dict, tmp_path: Path) -> None:
    browser = _chromium()
    page = Path(full_report["path"])
    dom = _render(browser, page, tmp_path / "profile-dom", "--dump-dom")
    if dom.returncode != 0 and not dom.stdout:
        pytest.skip(f"chromium did not start: {dom.stderr.strip()[-500:]}")
    html = dom.stdout
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "the page logged to the console:\n" + "\n".join(console)
    charts = full_report["charts"]
    assert f'data-charts-rendered="{charts}"' in html, "not every chart finished drawing"
    assert html.count('data-rendered="yes"') == charts
    assert html.count('class="main-svg"') >= charts  # plotly's SVG layers
    assert 'class="sankey"' in html and 'class="hm"' in html  # the lineage and topics x themes charts
    assert 'class="updatemenu-container"' in html  # the community menu of theme prevalence
    assert "<title>edumine report" in html, "user text ran as markup (it changed the title)"
    assert "<script>document.title" not in html and '<img src="x"' not in html
    assert '&lt;script&gt;document.title="pwned"&lt;/script&gt;' in html  # shown as text (a text node)

    shot = tmp_path / "report.png"
    taken = _render(browser, page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1300,3000")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-500:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    keep = os.environ.get("EDUMINE_REPORT_SCREENSHOT")
    if keep:  # to look at the page: EDUMINE_REPORT_SCREENSHOT=/tmp/report.png pytest tests/test_report.py
        shutil.copy(shot, keep)


@pytest.mark.prefect
def test_prefect_artifacts_inside_a_flow_run(lakes: dict[str, Path]) -> None:
    """A real (temporary) Prefect server: the report stage's artifacts are stored under their keys."""
    from edumine.pipelines.prefect_env import configure_prefect

    configure_prefect()
    from prefect import flow
    from prefect.artifacts import Artifact

    from edumine.report import build_report

    @flow(name="report-artifacts-test")
    def report_flow(lake: str) -> dict:
        return build_report(lake, out=Path(lake).parent / "artifact-report.html")

    summary = report_flow(str(lakes["bare"]))
    assert len(summary["prefect_artifacts"]) == 2
    markdown = Artifact.get("edumine-run-summary")
    table = Artifact.get("edumine-community-activity")
    assert markdown is not None and "| activity | ok |" in markdown.data
    assert table is not None and "teachingresources" in str(table.data) and "response_rate" in str(table.data)


def test_lineage_event_tables_count_the_whole_corpus_once(lakes: dict[str, Path], tmp_path: Path) -> None:
    """Regression: events are written for community 'all' and per community; the tables must not mix them."""
    import pandas as pd

    from edumine.report import build_report
    from summary_fixtures import write_parquet

    lake = copy_lake(lakes["full"], tmp_path / "lake")
    events = pd.DataFrame({"window_label": ["2018H1"] * 3, "community": ["all", "all", "teachingresources"],
                           "topic_id": [0, 1, 98765], "event": ["persisted", "grew", "faded"],
                           "related_topic_ids": [[0], [1], []], "score": [0.9, 0.8, 0.7]})
    write_parquet(lake, "topic_events", events)
    page = Path(build_report(lake)["path"]).read_text(encoding="utf-8")
    lineage = page[page.index('id="lineage"'):page.index('id="themes"')]
    counts = lineage[lineage.index("Events per window"):lineage.index("<h3>Events</h3>")]
    assert "grew" in counts and "faded" not in counts  # the per-community 'faded' is not counted again
    assert "98,765" not in lineage and "98765" not in lineage
