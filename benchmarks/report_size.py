"""The report's size and build time at the scale of a 1 M-doc lake, from aggregate tables shaped as the
stages write them (the report reads nothing else that grows with the corpus: the posts view only feeds the
coverage table and the 15 most discussed threads, and doc_topics x doc_themes the topics x themes heatmap,
all bounded by communities, topics and themes, and left out here).

    python benchmarks/report_size.py [--topics 1000] [--windows 30] [--communities 10] [--out DIR]

1 M docs: about 1,000 topics (topics.n_clusters defaults to √docs), 30 semesters, 10 communities. Prints
one JSON line: bytes of the page, of plotly.js inlined, seconds, rows read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]


def write(lake: Path, name: str, frame: pd.DataFrame) -> None:
    """Through the catalog's schema (tests/fixtures_catalog.py): the columns and types the stages write."""
    from fixtures_catalog import write_table

    write_table(lake, name, frame)


def synthetic_lake(lake: Path, topics: int, windows: int, communities: int, docs: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    labels = [f"{2009 + w // 2}H{w % 2 + 1}" for w in range(windows)]
    starts = [pd.Timestamp(f"{2009 + w // 2}-{'01' if w % 2 == 0 else '07'}-01").date() for w in range(windows)]
    names = [f"community{c}" for c in range(communities)]
    words = [f"word{i}" for i in range(5000)]
    write(lake, "topics", pd.DataFrame({
        "topic_id": range(topics), "label": [f"{t}_{words[t]}_{words[t + 1]}" for t in range(topics)],
        "top_terms": [[words[(t * 7 + k) % 5000] for k in range(10)] for t in range(topics)],
        "size": rng.integers(20, 3000, topics), "share": rng.random(topics) / topics,
        "label_coverage": rng.uniform(0.05, 0.9, topics),
        "representative_docs": [[" ".join(rng.choice(words, 120)) for _ in range(3)] for _ in range(topics)]}))
    per_window = docs // (windows * communities)
    rows = []
    for c, community in enumerate(names):
        for w in range(windows):
            total = int(per_window * rng.uniform(0.01, 2)) if w % 7 else int(rng.integers(1, 29))  # small windows
            counts = rng.multinomial(total, rng.dirichlet(np.ones(topics + 1) * 0.5))
            rows.append(pd.DataFrame({"window_start": starts[w], "window_label": labels[w], "community": community,
                                      "topic_id": np.arange(-1, topics), "docs": counts, "total_docs": total}))
    prevalence = pd.concat(rows, ignore_index=True)
    prevalence["share"] = prevalence["docs"] / prevalence["total_docs"].clip(lower=1)
    prevalence["share_low"], prevalence["share_high"] = prevalence["share"] * 0.8, prevalence["share"] * 1.2
    write(lake, "topic_prevalence", prevalence)
    cycle = np.array(["persisted", "grew", "declined", "split", "merged", "emerged", "faded", "persisted"])
    events, edges = [], []
    for community in ["all", *names]:
        for w in range(1, windows):
            ids = np.arange(topics)
            event = cycle[rng.integers(0, len(cycle), topics)]
            other = (ids + rng.integers(1, topics, topics)) % topics
            events.append(pd.DataFrame({"window_label": labels[w], "window_start": starts[w], "community": community,
                                        "scope": "all" if community == "all" else "community", "topic_id": ids,
                                        "event": event, "related_topics": [[int(o)] if e in ("split", "merged")
                                                                            else [] for o, e in zip(other, event)],
                                        "from_window": labels[w - 1], "score": rng.random(topics)}))
            edges.append(pd.DataFrame({"community": community, "from_window": labels[w - 1], "from_topic": ids,
                                       "to_window": labels[w], "to_topic": np.where(np.isin(event, ["split", "merged"]),
                                                                                     other, ids),
                                       "similarity": rng.uniform(0.75, 1, topics)}))
    write(lake, "topic_events", pd.concat(events, ignore_index=True))
    write(lake, "topic_lineage", pd.concat(edges, ignore_index=True))
    themes = [f"theme{i}" for i in range(8)]
    theme_rows = prevalence.drop_duplicates(["window_label", "community"])[["window_start", "window_label",
                                                                            "community", "total_docs"]]
    theme_rows = theme_rows.merge(pd.DataFrame({"theme": themes}), how="cross").rename(columns={"total_docs": "docs"})
    theme_rows["theme_docs"] = (theme_rows["docs"] * rng.uniform(0, 0.4, len(theme_rows))).astype(int)
    theme_rows["share"] = theme_rows["theme_docs"] / theme_rows["docs"].clip(lower=1)
    theme_rows["share_low"], theme_rows["share_high"] = theme_rows["share"] * 0.8, theme_rows["share"] * 1.2
    theme_rows["theme_label"] = theme_rows["theme"].str.title()
    theme_rows["method"], theme_rows["f1"] = "themes.synthetic", rng.uniform(0, 1, len(themes)).repeat(
        len(theme_rows) // len(themes))[:len(theme_rows)]
    theme_rows["reliable"] = theme_rows["f1"] >= 0.5
    write(lake, "theme_prevalence", theme_rows)
    activity = prevalence.drop_duplicates(["window_label", "community"])[["window_start", "window_label", "community",
                                                                          "total_docs"]].rename(
        columns={"total_docs": "posts"})
    activity["platform"], activity["comments"] = "reddit", activity["posts"] * 3
    activity["contributions"] = activity["posts"] + activity["comments"]
    activity["unknown_author_contributions"] = (activity["contributions"] * 0.1).astype(int)
    for column, part in (("contributors", 0.5), ("posters", 0.3), ("responders", 0.4), ("new_contributors", 0.2),
                         ("returning_contributors", 0.3), ("one_time_contributors", 0.25), ("reply_nodes", 0.4),
                         ("reply_ties", 0.8), ("comments_without_post", 0.01)):
        activity[column] = (activity["contributions"] * part).astype(int)
    for column in ("response_rate", "responses_per_thread", "self_response_share", "mean_degree", "reciprocity",
                   "transitivity"):
        activity[column] = rng.uniform(0, 1, len(activity))
    write(lake, "community_activity", activity)
    return {"community_activity": len(activity), "topic_prevalence": len(prevalence), "topic_events": sum(map(len, events)),
            "topic_lineage": sum(map(len, edges)), "theme_prevalence": len(theme_rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--communities", type=int, default=10)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from plotly.offline import get_plotlyjs

    from edumine.report.build import build_report

    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        rows = synthetic_lake(lake, args.topics, args.windows, args.communities, args.docs)
        started = time.perf_counter()
        summary = build_report(lake, out=args.out / "report-1m.html" if args.out else None)
        seconds = time.perf_counter() - started
    print(json.dumps({"topics": args.topics, "windows": args.windows, "communities": args.communities,
                      "docs": args.docs, "rows": rows, "bytes": summary["bytes"],
                      "plotly_js_bytes": len(get_plotlyjs().encode()), "seconds": round(seconds, 1),
                      "sections": summary["sections"]}))


if __name__ == "__main__":
    main()
