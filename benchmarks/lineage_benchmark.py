"""Topic lineage benchmark: full run against a nightly update with one new month, same process and lake;
the events found in the real corpora with year windows; two identical refits give identical ids and events.

    .venv/bin/python benchmarks/lineage_benchmark.py [--backend embeddings.tfidf_svd.v1] [--out benchmarks/out]

1. A fresh lake over the four shared corpora up to ``--cutoff`` (default 2023-09-01): the pipeline stages
   preprocess, topics (full refit) and lineage, timed (``full``).
2. The same lake with the sources extended by one month (``--cutoff`` + 1 month): the same stages, which
   now preprocess and embed only the new month and update the topic model incrementally (``nightly``).
3. A forced refit of the extended lake, twice (``lineage.update.mode=refit``): ids and events must match.

Writes ``lineage_benchmark.json`` and ``lineage_benchmark.md`` under ``--out``. Note the machine load
(printed) when comparing numbers: timings on a shared 2-core box move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["preprocess", "topics", "lineage"]


def _config(lake: Path, until: str, backend: str, extra: dict | None = None):  # noqa: ANN202
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import default_sources, make_config

    sources = default_sources()
    for source in sources:
        source["until"] = until
    sections = {"windows": {"unit": "year"}, "topics": {"embeddings": {"backend": backend}}}
    for key, value in (extra or {}).items():
        sections.setdefault(key, {}).update(value)
    return make_config(lake, sources=sources, **sections)


def _run(config) -> dict:  # noqa: ANN001
    from edumine.pipelines.runner import run_pipeline

    started = time.perf_counter()
    ctx = run_pipeline(config, only=STAGES)
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 2), "stage_s": {k: ctx.timings.get(k) for k in ["collect", *STAGES]},
            "pipeline_stages_s": round(sum(ctx.timings.get(k, 0) for k in STAGES), 2),
            "topic_update": ctx.outputs.get("topic_update"), "lineage": ctx.outputs.get("lineage"),
            "topics": {k: v for k, v in (ctx.outputs.get("topics") or {}).items() if k in ("docs", "seconds")}}


def _tables(lake: Path) -> dict:
    import pyarrow.dataset as ds

    out = {}
    for name in ("topic_events", "topic_lineage", "doc_topics", "topic_ids"):
        table = ds.dataset(lake / name, format="parquet").to_table().to_pandas()
        out[name] = table.drop(columns=[c for c in ("run_id", "first_run", "last_run") if c in table])
    return out


def _events_by_year(lake: Path) -> list[dict]:
    import pyarrow.dataset as ds

    events = ds.dataset(lake / "topic_events", format="parquet").to_table().to_pandas()
    topics = ds.dataset(lake / "topics", format="parquet").to_table(columns=["topic_id", "label"]).to_pandas()
    labels = dict(zip(topics["topic_id"], topics["label"]))
    corpus = events[(events["community"] == "all") & events["event"].isin(["emerged", "faded", "split", "merged",
                                                                            "grew", "declined"])]
    rows = []
    for row in corpus.sort_values(["window", "event", "topic_id"]).itertuples():
        rows.append({"window": row.window, "event": row.event, "topic_id": int(row.topic_id),
                     "label": labels.get(row.topic_id, ""), "related": [int(t) for t in row.related_topics],
                     "share_before": round(row.prevalence_before, 4), "share_after": round(row.prevalence_after, 4)})
    return rows


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="embeddings.tfidf_svd.v1")
    parser.add_argument("--cutoff", default="2023-09-01", help="the full run holds posts before this date")
    parser.add_argument("--next", default="2023-10-01", help="the nightly run adds posts up to this date")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary lake")
    args = parser.parse_args()
    os.environ.setdefault("EDUMINE_PSEUDONYM_KEY", "edumine-benchmark-key-not-secret")
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="edumine-prefect-"))
    work = Path(tempfile.mkdtemp(prefix="edumine-lineage-bench-"))
    lake = work / "lake"
    load = os.getloadavg()
    result: dict = {"backend": args.backend, "cutoff": args.cutoff, "next": args.next,
                    "load_before": [round(x, 2) for x in load]}
    try:
        result["full"] = _run(_config(lake, args.cutoff, args.backend))
        result["nightly"] = _run(_config(lake, args.next, args.backend))
        full, nightly = result["full"]["pipeline_stages_s"], result["nightly"]["pipeline_stages_s"]
        result["nightly_share_of_full"] = round(nightly / full, 4)
        topic_full = result["full"]["stage_s"]["topics"]
        topic_nightly = result["nightly"]["stage_s"]["topics"]
        result["nightly_topics_share_of_full_topics"] = round(topic_nightly / topic_full, 4)
        result["events_by_year"] = _events_by_year(lake)
        refit = {"lineage": {"update": {"mode": "refit"}}}
        first = _run(_config(lake, args.next, args.backend, refit))
        tables_first = _tables(lake)
        second = _run(_config(lake, args.next, args.backend, refit))
        tables_second = _tables(lake)
        identical = {}
        for name in tables_first:
            try:
                pd.testing.assert_frame_equal(tables_first[name], tables_second[name])
                identical[name] = True
            except AssertionError:
                identical[name] = False
        result["refit_twice"] = {"identical": identical, "first": first["topic_update"],
                                 "second": second["topic_update"], "refit_s": first["stage_s"]["topics"]}
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lineage_benchmark.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    lines = [f"# Lineage benchmark ({args.backend})", "",
             f"load before {result['load_before']}, after {result.get('load_after')}", "",
             "| run | preprocess s | topics s | lineage s | stages total s | mode |", "|---|---|---|---|---|---|"]
    for name in ("full", "nightly"):
        run = result[name]
        lines.append(f"| {name} | {run['stage_s']['preprocess']} | {run['stage_s']['topics']} | "
                     f"{run['stage_s']['lineage']} | {run['pipeline_stages_s']} | {run['topic_update']['mode']} |")
    lines += ["", f"nightly / full (stages): {result['nightly_share_of_full']:.1%}; topics stage alone: "
                  f"{result['nightly_topics_share_of_full_topics']:.1%}", "",
              f"refit twice identical: {result['refit_twice']['identical']}", "",
              "## Events (all communities, year windows)", "",
              "| window | event | topic | label | related | share before | share after |",
              "|---|---|---|---|---|---|---|"]
    for row in result["events_by_year"]:
        lines.append(f"| {row['window']} | {row['event']} | {row['topic_id']} | {row['label']} | {row['related']} | "
                     f"{row['share_before']} | {row['share_after']} |")
    (out / "lineage_benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
