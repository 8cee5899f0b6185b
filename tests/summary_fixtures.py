"""Helpers for store and report tests: a small real lake, and topic / lineage / theme tables shaped as
CONTRACT.md names them (written here because those stages belong to other modules)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa

from conftest import CORPORA, make_config
from dumpfiles import comment, submission, write_zst

SCRIPT_TITLE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
THEMES = ("seeking resources", "sharing practice", "emotional support")


def lake_sources(extra_dir: Path) -> list[dict]:
    """r/teachingresources 2017-18 plus one hostile thread (a title and topic label holding markup)."""
    hostile = [submission("zzhost1", created=1520000000, subreddit="teachingresources", title=SCRIPT_TITLE)]
    hostile += [comment(f"zzc{i}", "zzhost1", created=1520000000 + 60 * i, subreddit="teachingresources")
                for i in range(1, 40)]
    write_zst(extra_dir / "hostile_submissions.zst", hostile)
    return [{"kind": "reddit.dumps.v1", "name": "teachingresources",
                "paths": [str(CORPORA / "reddit-teaching-2017-18" / "teachingresources_*.zst"),
                          str(extra_dir / "hostile_*.zst")]}]


def collect_lake(lake: Path, extra_dir: Path):
    from edumine.pipelines.runner import run_collect

    config = make_config(lake, lake_sources(extra_dir))
    run_collect(config)
    return config


def write_parquet(lake: Path, name: str, frame: pd.DataFrame) -> None:
    from edumine.lake import write_parquet_atomic

    write_parquet_atomic(pa.Table.from_pandas(frame, preserve_index=False), lake / name / "part-0.parquet")


def write_model_tables(lake: Path) -> None:
    """Deterministic topics and themes over the lake's posts, in the contract's table shapes."""
    from edumine.lake import Lake

    posts = Lake(lake).read_posts(columns=["uid", "kind", "created_at", "community"]).to_pandas()
    posts = posts[posts["kind"] == "post"].sort_values("uid").reset_index(drop=True)
    moment = posts["created_at"].dt
    posts["window_label"] = moment.year.astype(str) + ["H1" if m <= 6 else "H2" for m in moment.month]
    posts["topic_id"] = posts.index % 5 - 1  # -1: outliers
    posts["theme"] = [THEMES[i % 3] for i in range(len(posts))]
    labels = {0: SCRIPT_TITLE + " lesson plans", 1: "worksheets math", 2: "reading books", 3: "science labs"}
    topics = pd.DataFrame({"topic_id": list(labels), "label": list(labels.values()),
                           "top_terms": [label.split()[-2:] for label in labels.values()],
                           "size": [int((posts["topic_id"] == t).sum()) for t in labels]})
    write_parquet(lake, "topics", topics)
    write_parquet(lake, "doc_topics", posts.assign(probability=0.8)[["uid", "topic_id", "probability"]])
    write_parquet(lake, "doc_themes", pd.DataFrame({"uid": posts["uid"], "themes": [[t] for t in posts["theme"]]}))
    for table, column in (("topic_prevalence", "topic_id"), ("theme_prevalence", "theme")):
        counts = posts.groupby(["window_label", "community", column]).size().rename("docs").reset_index()
        totals = counts.groupby(["window_label", "community"])["docs"].transform("sum")
        counts["share"] = counts["docs"] / totals
        counts["share_low"], counts["share_high"] = counts["share"] * 0.8, counts["share"] * 1.2
        if table == "theme_prevalence":  # a second community, so the report's community menu is drawn too
            counts = pd.concat([counts, counts.assign(community="teaching", docs=counts["docs"] // 2)])
        write_parquet(lake, table, counts)
    lineage = pd.DataFrame({"from_window": ["2017H2"] * 4 + ["2017H2"], "from_topic": [0, 1, 2, 3, 3],
                            "to_window": ["2018H1"] * 5, "to_topic": [0, 1, 2, 2, 3],
                            "similarity": [0.9, 0.7, 0.8, 0.4, 0.6]})
    lineage = pd.concat([lineage.assign(community="teachingresources"),
                         lineage.head(3).assign(community="teaching")])  # the lineage stage's shape: per community
    write_parquet(lake, "topic_lineage", lineage)
    events = pd.DataFrame({"window_label": ["2017H2"] * 4 + ["2018H1"] * 4, "community": "teachingresources",
                           "topic_id": [0, 1, 2, 3, 0, 1, 2, 3],
                           "event": ["emerged"] * 4 + ["persisted", "declined", "merged", "grew"],
                           "related_topic_ids": [[], [], [], [], [0], [1], [2, 3], [3]],
                           "score": [1.0, 1.0, 1.0, 1.0, 0.9, 0.7, 0.8, 0.6]})
    write_parquet(lake, "topic_events", events)


def copy_lake(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    (target / ".lock").unlink(missing_ok=True)
    return target
