"""Helpers for store and report tests: a small real lake, and topic / lineage / theme tables built from the
catalog's schemas (``fixtures_catalog``), so they are what those stages write, column for column."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd

from conftest import CORPORA, make_config
from dumpfiles import comment, submission, write_zst
from fixtures_catalog import write_table

SCRIPT_TITLE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
THEMES = ("seeking resources", "sharing practice", "emotional support")
RUN_ID = "fixture-run"


def lake_sources(extra_dir: Path, small_window: bool = False) -> list[dict]:
    """r/teachingresources 2017-18 plus one hostile thread (a title and topic label holding markup); with
    ``small_window``, also four posts in 2016H2 (a window too small to draw shares from)."""
    hostile = [submission("zzhost1", created=1520000000, subreddit="teachingresources", title=SCRIPT_TITLE)]
    hostile += [comment(f"zzc{i}", "zzhost1", created=1520000000 + 60 * i, subreddit="teachingresources")
                for i in range(1, 40)]
    if small_window:
        hostile += [submission(f"zzsmall{i}", created=1478000000 + 86400 * i, subreddit="teachingresources",
                               title=f"an early post {i}") for i in range(4)]
    write_zst(extra_dir / "hostile_submissions.zst", hostile)
    return [{"kind": "reddit.dumps.v1", "name": "teachingresources",
                "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_*.zst"),
                          str(extra_dir / "hostile_*.zst")]}]


def collect_lake(lake: Path, extra_dir: Path, small_window: bool = False):
    from edumine.pipelines.runner import run_collect

    config = make_config(lake, lake_sources(extra_dir, small_window))
    run_collect(config)
    return config


def write_model_tables(lake: Path) -> None:
    """Deterministic topics, lineage and themes over the lake's posts, built from the catalog's schemas
    (``fixtures_catalog``), so they hold exactly the columns their stages write (topic 3 a catch-all by label
    coverage; theme 'emotional support' under the reliability floor)."""
    from edumine.lake import Lake

    posts = Lake(lake).read_posts(columns=["uid", "kind", "created_at", "community", "title"]).to_pandas()
    posts = posts[posts["kind"] == "post"].sort_values("uid").reset_index(drop=True)
    moment = posts["created_at"].dt
    posts["window_label"] = moment.year.astype(str) + ["H1" if m <= 6 else "H2" for m in moment.month]
    posts["window_start"] = pd.to_datetime(moment.year.astype(str) + ["-01-01" if m <= 6 else "-07-01"
                                                                      for m in moment.month]).dt.date
    posts["topic_id"] = posts.index % 5 - 1  # -1: outliers
    posts["theme"] = [THEMES[i % 3] for i in range(len(posts))]
    labels = {0: SCRIPT_TITLE + " lesson plans", 1: "worksheets math", 2: "reading books", 3: "margaretb golden"}
    write_table(lake, "topics", {
        "topic_id": list(labels), "label": list(labels.values()),
        "top_terms": [label.split()[-2:] for label in labels.values()],
        "size": [int((posts["topic_id"] == t).sum()) for t in labels],
        "share": [float((posts["topic_id"] == t).mean()) for t in labels],
        "label_coverage": [0.6, 0.5, 0.45, 0.05],
        "representative_docs": [[str(t) for t in posts.loc[posts["topic_id"] == k, "title"].fillna("").head(3)]
                                for k in labels],
        "run_id": [RUN_ID] * len(labels)})
    write_table(lake, "doc_topics", posts.assign(probability=0.8, core=True, run_id=RUN_ID)[
        ["uid", "topic_id", "probability", "core", "community", "window_start", "window_label", "run_id"]])
    write_table(lake, "doc_themes", {"uid": posts["uid"], "community": posts["community"],
                                     "created_at": posts["created_at"], "themes": [[t] for t in posts["theme"]],
                                     "scores": [[(t, 0.9)] for t in posts["theme"]],
                                     "model": ["themes-fixture"] * len(posts)})
    keys = ["window_start", "window_label", "community"]
    totals = posts.groupby(keys).size().rename("total_docs")
    topic_rows = posts.groupby(keys + ["topic_id"]).size().rename("docs").reset_index().merge(
        totals.reset_index(), on=keys)
    theme_rows = posts.groupby(keys + ["theme"]).size().rename("theme_docs").reset_index().merge(
        totals.rename("docs").reset_index(), on=keys)
    for table, counts, hits, total in (("topic_prevalence", topic_rows, "docs", "total_docs"),
                                       ("theme_prevalence", theme_rows, "theme_docs", "docs")):
        counts["share"] = counts[hits] / counts[total]
        counts["share_low"], counts["share_high"] = counts["share"] * 0.8, counts["share"] * 1.2
        if table == "theme_prevalence":  # a second community, so the report's community menu is drawn too
            counts["theme_label"] = counts["theme"].str.title()
            counts = pd.concat([counts, counts.assign(community="teaching", docs=counts["docs"] // 2,
                                                      theme_docs=counts["theme_docs"] // 2)])
            counts["model"], counts["method"] = "themes-fixture", "themes.fixture.v1"
            counts["f1"] = counts["theme"].map({THEMES[0]: 0.71, THEMES[1]: 0.62, THEMES[2]: 0.0})
            counts["reliable"] = counts["f1"] >= 0.5
        else:
            counts["run_id"] = RUN_ID
        write_table(lake, table, counts)
    lineage = pd.DataFrame({"from_window": ["2017H2"] * 5, "from_window_start": [date(2017, 7, 1)] * 5,
                            "from_topic": [0, 1, 2, 3, 3], "to_window": ["2018H1"] * 5,
                            "to_window_start": [date(2018, 1, 1)] * 5, "to_topic": [0, 1, 2, 2, 3],
                            "similarity": [0.9, 0.7, 0.8, 0.4, 0.6]})
    lineage = pd.concat([lineage.assign(community="all"), lineage.assign(community="teachingresources"),
                         lineage.head(3).assign(community="teaching")])  # the lineage stage's shape: per scope
    write_table(lake, "topic_lineage", lineage)
    events = pd.DataFrame({"window_label": ["2017H2"] * 4 + ["2018H1"] * 4,
                           "window_start": [date(2017, 7, 1)] * 4 + [date(2018, 1, 1)] * 4,
                           "topic_id": [0, 1, 2, 3, 0, 1, 2, 3],
                           "event": ["emerged"] * 4 + ["persisted", "declined", "merged", "grew"],
                           "related_topics": [[], [], [], [], [0], [1], [2, 3], [3]],
                           "from_window": [None] * 4 + ["2017H2"] * 4,
                           "score": [1.0, 1.0, 1.0, 1.0, 0.9, 0.7, 0.8, 0.6]})
    write_table(lake, "topic_events", pd.concat([events.assign(community="teachingresources", scope="community"),
                                                 events.head(5).assign(community="all", scope="all")]))


def copy_lake(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    (target / ".lock").unlink(missing_ok=True)
    return target
