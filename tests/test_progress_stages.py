"""Progress and cost in the run log: every long phase of the topic, lineage, theme, metrics and store stages
logs its count, duration and rate (docs/s, or its own unit), so a Prefect worker's log says how fast each part
of a nightly run went; the stage's own rate line is the manifest's ``docs_per_s``.

One small real pipeline (r/teachingresources 2017-18 submissions and comments, semester windows) run once."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from conftest import CORPORA, SHARED, make_config

SOURCES = [{"kind": "reddit.dumps.v1", "name": "resources",
            "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_submissions.zst"),
                      str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_comments.zst")]}]
# "<description>: N <unit> in <duration> (R <unit>/s)": the summary line of Progress and phase
SUMMARY = re.compile(r"^(?P<what>.+): (?P<count>[\d,]+) (?P<unit>[a-z -]+) in (?:\d+ h )?(?:\d+ min )?\d+ s "
                     r"\((?P<rate>[\d,]+) (?P=unit)/s\)$")


@pytest.fixture(scope="module")
def run_log(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from edumine.pipelines.runner import run_pipeline

    root = tmp_path_factory.mktemp("progress")
    themes = {"codebook": str(SHARED / "codebook" / "sdl_themes.yaml"),
              "labels": [str(SHARED / "labels" / "sdl_train.jsonl")], "imported_labels": str(root / "imported.jsonl"),
              "classifier": "themes.tfidf_logreg.v1", "params": {"ngram_max": 1}, "eval_folds": 0,
              "threshold_folds": 3, "model_dir": str(root / "models"), "cache_dir": str(root / "cache")}
    config = make_config(root / "lake", SOURCES, windows={"unit": "semester"}, themes=themes,
                         lineage={"min_window_docs": 20})
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        ctx = run_pipeline(config, only=["preprocess", "topics", "lineage", "themes", "metrics", "store"])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [record.getMessage() for record in records]
    summaries = {m["what"]: m for m in map(SUMMARY.match, lines) if m}
    loggers = {SUMMARY.match(r.getMessage())["what"]: r.name for r in records if SUMMARY.match(r.getMessage())}
    return {"ctx": ctx, "lines": lines, "summaries": summaries, "loggers": loggers}


def summary_of(run_log: dict, prefix: str) -> re.Match:
    found = [m for what, m in run_log["summaries"].items() if what.startswith(prefix)]
    assert found, f"no summary line for {prefix!r}; lines: {run_log['lines']}"
    return found[0]


@pytest.mark.parametrize(("prefix", "unit"), [
    ("topics: model (refit or nightly update)", "docs"),
    ("topics: BERTopic fit", "docs"),
    ("topics: k-means fit", "docs"),
    ("topics: vocabulary", "topics"),
    ("topics: nearest topic", "docs"),
    ("topics: NPMI counts", "docs"),
    ("topics: label coverage", "docs"),
    ("topics: doc_topics table", "docs"),
    ("topics: prevalence per window and community", "docs"),
    ("topics: writing doc_topics", "rows"),
    ("lineage: reading cached embeddings", "docs"),
    ("lineage: topic centroids per window", "docs"),
    ("lineage: prevalence intervals", "topic-windows"),
    ("lineage: matching topics of consecutive windows", "window pairs"),
    ("lineage: tracking topics across windows", "docs"),
    ("themes: scoring", "docs"),
    ("themes: doc_themes table", "docs"),
    ("themes: prevalence per window and community", "groups"),
    ("metrics: activity counts and threads", "docs"),
    ("metrics: reply networks per window and community", "groups"),
    ("store: summary tables", "tables"),
])
def test_each_long_phase_logs_count_and_rate(run_log: dict, prefix: str, unit: str) -> None:
    match = summary_of(run_log, prefix)
    assert match["unit"] == unit and int(match["count"].replace(",", "")) > 0
    # a phase also says what it starts on, before the work: count and unit
    if not prefix.startswith(("topics: nearest", "topics: NPMI", "lineage: matching", "themes: scoring",
                              "themes: prevalence", "metrics: reply", "store:")):  # loops: a bar / periodic lines
        assert any(line.startswith(match["what"] + f": {match['count']} {unit} ...") for line in run_log["lines"])


def test_progress_lines_reach_prefect(run_log: dict) -> None:
    """Prefect forwards the ``edumine`` loggers (pipelines/prefect_env.py): every progress line is on one."""
    assert run_log["loggers"] and all(name.startswith("edumine.") for name in run_log["loggers"].values()), \
        run_log["loggers"]


def test_counts_are_the_stages_own(run_log: dict) -> None:
    outputs = run_log["ctx"].outputs
    docs = outputs["topics"]["docs"]
    for prefix in ("topics: NPMI counts", "topics: doc_topics table", "topics: model"):
        assert int(summary_of(run_log, prefix)["count"].replace(",", "")) == docs
    assert int(summary_of(run_log, "themes: scoring")["count"].replace(",", "")) == outputs["themes"]["scored_now"]
    groups = int(summary_of(run_log, "themes: prevalence per window")["count"].replace(",", ""))
    assert groups * len(outputs["themes"]["share_overall"]) == outputs["themes"]["prevalence_rows"]
    assert int(summary_of(run_log, "lineage: matching")["count"].replace(",", "")) == \
        outputs["lineage"]["pairs_recomputed"]


def test_stage_rate_lines_match_the_manifest(run_log: dict) -> None:
    """The runner logs each stage's docs/s, the figure the manifest records."""
    ctx = run_log["ctx"]
    assert {"preprocess", "topics", "lineage", "themes"} <= set(ctx.docs_per_s)
    for stage, rate in ctx.docs_per_s.items():
        match = summary_of(run_log, f"stage {stage}")
        if stage == "collect":  # records of all sources
            assert match["unit"] == "records" and \
                int(match["count"].replace(",", "")) == sum(item["records"] for item in ctx.inputs)
        else:
            assert match["unit"] == "docs" and int(match["count"].replace(",", "")) == ctx.outputs[stage]["docs"]
        assert abs(int(match["rate"].replace(",", "")) - rate) <= 1  # rounded to a whole number in the log


def test_report_sections_log_their_time(tmp_path: Path, run_log: dict, caplog: pytest.LogCaptureFixture) -> None:
    from edumine.report.build import build_report

    lake = run_log["ctx"].lake.root
    caplog.set_level(logging.INFO, logger="edumine.report.build")
    build_report(lake, out=tmp_path / "report.html")
    timed = [r.getMessage() for r in caplog.records if re.match(r"^report: \w+ built in \d+\.\d s$", r.getMessage())]
    assert {line.split()[1] for line in timed} >= {"topics", "provenance", "activity", "lineage", "threads"}
