"""The whole pipeline at scale: one ``edumine run`` (collect and every stage) over N real-based contributions.

    .venv/bin/python benchmarks/pipeline_scale.py --n 100000 [--work data/cache/scale] [--no-docs]

Writes N records of the real corpora with their real reply structure (``scaled_forest`` in
benchmarks/scaled_corpus.py: copy 0 is the real posts and comments of ../shared/corpora, deleted ones
included; copy k repeats every thread with perturbed text and ids, parents, threads and authors of copy
k, so each copy is a whole reply forest of other people) as Pushshift-style NDJSON dumps (``.zst``). Then
runs ``edumine run`` on a fresh lake, with a fresh themes model folder and embedding cache, every registered
stage enabled and every other setting at its default, as one process under ``/usr/bin/time -v``, from the
project root. The benchmark fails if a stage did not run or reports that it skipped its work.

Records per stage: seconds, docs/s and the process's peak RSS when the stage ended (from the run's
manifest); for the whole process: wall time and peak RSS (``time -v``: the largest of the process and its
children, e.g. Prefect's temporary server), the report's size, the load average before and after. The JSON
goes to ``benchmarks/out/pipeline-N.json`` and a table to ``benchmarks/results/performance.md`` (replacing that N's
table).

Nightly mode (``--nightly 0.01``): the N records are split by ``created_at``: the newest share (1 %) is held
back. A full run over the older records on a fresh lake is timed as above; then the held-back records are
written as two more dump files into the same folder (the source's glob picks them up, as a nightly
collection would) and a second ``edumine run`` on the same lake is timed the same way. Reported: both runs'
per-stage seconds and whole-process figures, and the ratio nightly / full of the whole-process wall time and
of each stage. JSON ``benchmarks/out/pipeline-nightly-N.json``, table ``pipeline-nightly N``.

Nightly runs side by side without their full run: ``--snapshot DIR`` keeps the state the full run left,
``--from-snapshot DIR`` times only a nightly run from it (benchmarks/pipeline_nightly.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

DUMPS_FORMAT = "forest.v1"  # bump when the dumps' content changes: older dumps are rebuilt
DOCS = ROOT / "benchmarks" / "results" / "performance.md"


def fullname(uid: str) -> str:
    """A lake uid (``reddit:comment:abc``) as the Reddit fullname a dump points with (``t1_abc``)."""
    _, kind, record_id = uid.split(":", 2)
    return ("t1_" if kind == "comment" else "t3_") + record_id


def dump_line(record: dict[str, Any]) -> dict[str, Any]:
    """One scaled record as a Pushshift object; what the record lacks (author, parent, score) stays absent."""
    line: dict[str, Any] = {"id": record["id"], "subreddit": record["community"],
                            "created_utc": int(datetime.fromisoformat(record["created_at"]).timestamp())}
    if record.get("author") is not None:
        line["author"] = record["author"]
    if record.get("score") is not None:
        line["score"] = record["score"]
    if record.get("is_deleted"):
        line["removed_by_category"] = record.get("removal") or "deleted"  # the lake keeps no text of these
    if record["kind"] == "comment":
        line["body"] = record.get("body") or ""
        line["link_id"] = fullname(record["thread_uid"])
        if record.get("parent_uid"):
            line["parent_id"] = fullname(record["parent_uid"])
    else:
        line.update(title=record.get("title") or "", selftext=record.get("body") or "",
                    is_self=not record.get("link_url"), url=record.get("link_url") or "")
    return line


def write_dumps(records: Any, folder: Path, stem: str = "scaled") -> dict[str, Any]:
    """Scaled records as one submission and one comment dump (zstd NDJSON, ``RS_<stem>.zst`` and
    ``RC_<stem>.zst``); returns counts."""
    import orjson
    import zstandard

    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, Any] = {"format": DUMPS_FORMAT, "post": 0, "comment": 0, "copies": 0,
                              "with_author": 0, "deleted": 0}
    # One compressor per stream: a ZstdCompressor's context cannot serve two open streams.
    with open(folder / f"RS_{stem}.zst", "wb") as posts_raw, open(folder / f"RC_{stem}.zst", "wb") as comments_raw, \
            zstandard.ZstdCompressor(level=3).stream_writer(posts_raw) as posts, \
            zstandard.ZstdCompressor(level=3).stream_writer(comments_raw) as comments:
        for record in records:
            (comments if record["kind"] == "comment" else posts).write(orjson.dumps(dump_line(record)) + b"\n")
            counts[record["kind"]] += 1
            counts["copies"] = max(counts["copies"], record["copy"] + 1)
            counts["with_author"] += record.get("author") is not None
            counts["deleted"] += bool(record.get("is_deleted"))
    return counts


def stage_sections() -> dict[str, str | None]:
    """Every registered stage and its config section (None: a stage without settings always runs)."""
    from edumine import registry
    from edumine.stages import discover_stages

    discover_stages()
    return {name: stage.section for name, stage in registry.stages.items()}


def config_text(dumps: Path, lake: Path, run_dir: Path, sections: dict[str, str | None],
                themes_models: Path) -> str:
    """Every stage on (``paper_table`` is off by default); themes keep their default classifier and settings,
    only their model folder (``themes_models``) and embedding cache (always this run's own) move."""
    import yaml

    data: dict[str, Any] = {
        "lake": str(lake),
        "sources": [{"kind": "reddit.dumps.v1", "name": "scaled", "paths": [f"{dumps}/*.zst"]}],
        "privacy": {"key_file": str(run_dir / "pseudonym.key")},
        "windows": {"unit": "semester"},
    }
    for section in sorted(filter(None, set(sections.values()))):
        data[section] = {"enabled": True}
    for section in sorted(filter(None, set(stage_sections().values()) - set(sections.values()))):
        data[section] = {"enabled": False}
    data.setdefault("themes", {}).update(model_dir=str(themes_models), cache_dir=str(run_dir / "embeddings"))
    return yaml.safe_dump(data, sort_keys=False)


def time_v(stderr: str) -> dict[str, Any]:
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    elapsed = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", stderr).group(1)
    seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(elapsed.split(":"))))
    return {"peak_rss_mb": peak_kb // 1024, "time_v_wall_seconds": round(seconds, 1)}


def reply_structure(lake: Path) -> dict[str, Any]:
    """What the lake holds of the reply forest (read after the timed run, not part of it)."""
    import duckdb

    posts = f"read_parquet('{lake}/posts/**/*.parquet', hive_partitioning = true)"
    row = duckdb.connect().execute(
        f"WITH p AS (SELECT * FROM {posts}), ids AS (SELECT DISTINCT uid FROM p) SELECT "
        "count(*) FILTER (kind = 'post'), count(*) FILTER (kind = 'comment'), "
        "count(*) FILTER (kind = 'comment' AND parent_uid IN (SELECT uid FROM ids)), "
        "count(*) FILTER (kind = 'comment' AND thread_uid IN (SELECT uid FROM ids)), "
        "count(DISTINCT author), count(*) FILTER (author IS NULL), count(*) FILTER (is_deleted) FROM p").fetchone()
    names = ("posts", "comments", "comments_with_parent_in_lake", "comments_with_thread_in_lake", "authors",
             "unknown_author_records", "deleted_records")
    return dict(zip(names, (int(v) for v in row), strict=True))


def check_every_stage(manifest: dict[str, Any], sections: dict[str, str | None]) -> None:
    """Refuse a result in which a stage did not run, failed, or skipped its work."""
    problems = [f"stage {name!r} did not run" for name in sections if name not in manifest["timings"]]
    problems += [f"stage {name!r} skipped: {summary['skipped']}" for name, summary in manifest["outputs"].items()
                 if isinstance(summary, dict) and summary.get("skipped")]
    if manifest.get("status") != "completed":
        problems.append(f"run status {manifest.get('status')!r}: {manifest.get('error')}")
    if problems:
        raise SystemExit("the benchmark did not measure the whole pipeline:\n  - " + "\n  - ".join(problems))


def stage_rows(manifest: dict[str, Any], records: int) -> list[dict[str, Any]]:
    """Per stage in run order: seconds, docs/s (the manifest's, for stages that count docs; else the corpus's
    records per second, marked), peak RSS of the process when the stage ended."""
    rows = []
    for name, seconds in manifest["timings"].items():
        rate = manifest.get("docs_per_s", {}).get(name)
        rows.append({"stage": name, "seconds": seconds, "docs_per_s": rate,
                     "records_per_s": None if rate is not None or not seconds else round(records / seconds, 1),
                     "peak_rss_mb": manifest.get("peak_rss_mb", {}).get(name)})
    return rows


def block_name(result: dict[str, Any]) -> str:
    """The docs block of this N (and of these overrides: a non-default config gets a block of its own)."""
    overrides = result.get("overrides") or []
    return f"pipeline-scale {result['n']}" + (f" ({', '.join(overrides)})" if overrides else "")


def markdown(result: dict[str, Any]) -> str:
    n, name = result["n"], block_name(result)
    overrides = result.get("overrides") or []
    setting = f", config overrides {', '.join(f'`{item}`' for item in overrides)}" if overrides else ""
    lines = [f"<!-- {name} start (written by benchmarks/pipeline_scale.py) -->",
             f"### {n:,} contributions{setting} ({result['records']['post']:,} posts, {result['records']['comment']:,} "
             f"comments, {result['records']['copies']} copies), {result['date']}", "",
             "| stage | seconds | docs/s | peak RSS after the stage (MiB) |", "|---|---:|---:|---:|"]
    for row in result["stages"]:
        rate = (f"{row['docs_per_s']:,.0f}" if row["docs_per_s"] is not None else
                f"({row['records_per_s']:,.0f})" if row["records_per_s"] is not None else "")
        lines.append(f"| {row['stage']} | {row['seconds']:,.1f} | {rate} | {row['peak_rss_mb']:,} |")
    process, structure = result["process"], result["reply_structure"]
    lines += ["",
              f"- whole process (`/usr/bin/time -v`): **{process['wall_seconds']:,.1f} s** wall, "
              f"**{process['peak_rss_mb']:,} MiB** peak RSS; sum of stages {result['stage_seconds_total']:,.1f} s",
              f"- report: {result['report_bytes']:,} bytes; themes classifier `{result['themes_classifier']}` "
              f"({result['themes_model']}; embedding cache empty at the start)",
              f"- reply structure in the lake: {structure['comments']:,} comments, "
              f"{structure['comments_with_parent_in_lake']:,} with their parent and "
              f"{structure['comments_with_thread_in_lake']:,} with their thread in the lake; "
              f"{structure['authors']:,} authors",
              f"- load average (1, 5, 15 min) before {result['load_before']}, after {result['load_after']}; "
              f"{os.cpu_count()} CPUs; commit `{result['commit']}`",
              f"- command: `{result['command']}`",
              f"<!-- {name} end -->"]
    return "\n".join(lines) + "\n"


def timed_run(command: list[str], env: dict[str, str], log_path: Path, lake: Path,
              sections: dict[str, str | None]) -> dict[str, Any]:
    """One ``edumine run`` under ``/usr/bin/time -v``: wall time, ``time -v`` figures, load before and after,
    and the run's manifest (refused when a stage did not run or skipped its work)."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        finished = subprocess.run(["/usr/bin/time", "-v", *command], env=env, cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - started
    load_after = [round(x, 2) for x in os.getloadavg()]
    output = log_path.read_text(encoding="utf-8", errors="replace")
    if finished.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed (exit {finished.returncode}); log {log_path}:\n"
                         f"{output[-4000:]}")
    manifests = sorted((lake / "runs").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    manifest = json.loads(manifests[-1].read_text())
    check_every_stage(manifest, sections)
    return {"manifest": manifest, "load_before": load_before, "load_after": load_after,
            "process": {"wall_seconds": round(wall, 1), **time_v(output)}}


def running_prefect_server(env: dict[str, str]) -> str:
    """A Prefect server (Prefect's own server command, as ``edumine run`` starts it) for the runs to report to,
    as a nightly deployment's worker reports to its server; returns its API URL."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT_")})
    from edumine.pipelines.prefect_env import configure_prefect, start_server_early, wait_for_server

    configure_prefect()
    server = start_server_early()
    if server is None:
        raise SystemExit("--prefect-server: Prefect's settings already name a server (PREFECT_API_URL or a profile)")
    wait_for_server(server)
    if os.environ.get("PREFECT_API_URL") != server.api_url:
        raise SystemExit("--prefect-server: the Prefect server did not start")
    return server.api_url


def commit_label() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return commit + (" (with uncommitted changes)" if dirty else "")


def shown_command() -> str:
    return (f"nice -n {os.nice(0)} " if os.nice(0) > 0 else "") + shlex.join(
        [".venv/bin/python", "benchmarks/pipeline_scale.py", *sys.argv[1:]])


def update_block(path: Path, block: str, marker: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    pattern = re.compile(rf"<!-- {re.escape(marker)} start .*?<!-- {re.escape(marker)} end -->\n", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "cache" / "scale")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--docs", type=Path, default=DOCS, help="page whose table for this N is replaced")
    parser.add_argument("--no-docs", action="store_true", help="write the JSON only")
    parser.add_argument("--reuse-themes-model", action="store_true",
                        help="keep the trained theme model in <work>/themes-models across runs (a warm model, as "
                             "in a nightly run; the model is keyed by codebook, labels and settings); default: "
                             "trained in the run, inside the timing")
    parser.add_argument("--disable", action="append", default=[], metavar="STAGE",
                        help="turn a stage off (profiling only: the tables then are not the default config's)")
    parser.add_argument("--prefect-server", action="store_true",
                        help="both runs report to one Prefect server started before them (as the nightly "
                             "deployment runs, under `prefect server start`); default: each run starts its own "
                             "temporary server inside the timing")
    parser.add_argument("--nightly", type=float, default=None, metavar="SHARE",
                        help="hold back the newest SHARE of the records (e.g. 0.01), time a full run over the "
                             "rest, then a second run that collects the held-back records (module docstring)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override passed to `edumine run --set` (e.g. themes.classifier=...): the "
                             "table then is not the default config's, and its heading says so")
    parser.add_argument("--task-runner", choices=("default", "dask"), default="default",
                        help="dask: the heavy stages' partitions on a local Dask cluster of EDUMINE_DASK_WORKERS "
                             "(default: CPU count) processes (benchmarks/dask_speedup.py puts both side by side)")
    parser.add_argument("--snapshot", type=Path, default=None, metavar="DIR",
                        help="with --nightly: keep the state after the full run in DIR (module docstring)")
    parser.add_argument("--from-snapshot", type=Path, default=None, metavar="DIR",
                        help="time only the nightly run, from a state kept with --snapshot")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="FILE",
                        help="with --from-snapshot: profile the nightly run with py-spy (raw samples to FILE; "
                             "the timing then includes the sampler's cost: for profiles, not for figures)")
    args = parser.parse_args()
    if args.from_snapshot is not None:
        from pipeline_nightly import nightly_from_snapshot

        nightly_from_snapshot(args)
        return
    if args.snapshot is not None and args.nightly is None:
        raise SystemExit("--snapshot keeps the state between a full and a nightly run: give --nightly too")

    from pipeline_nightly import nightly_markdown, split_newest
    from scaled_corpus import scaled_forest
    from topics_benchmark import base_records

    nightly = args.nightly is not None
    work = args.work.resolve() / (f"nightly-{args.n}-{args.nightly:g}" if nightly else str(args.n))
    dumps, run_dir = work / "dumps", work / "run"
    counts_path = dumps / "counts.json"
    counts = json.loads(counts_path.read_text()) if counts_path.exists() else {}
    held_back: list[dict[str, Any]] = []
    if nightly:  # dumps of the older records only; the newest are written after the full run
        shutil.rmtree(dumps, ignore_errors=True)
        base = base_records(ROOT / "data" / "cache" / "bench", deleted=True)
        older, held_back = split_newest(list(scaled_forest(base, args.n)), args.nightly)
        counts = write_dumps(older, dumps, stem="base")
    elif counts.get("format") != DUMPS_FORMAT:
        base = base_records(ROOT / "data" / "cache" / "bench", deleted=True)
        counts = write_dumps(scaled_forest(base, args.n), dumps)
        counts_path.write_text(json.dumps(counts) + "\n")
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh lake and embedding cache (and theme model, by default)
    run_dir.mkdir(parents=True)
    lake = run_dir / "lake"
    sections = {name: section for name, section in stage_sections().items() if name not in args.disable}
    config = run_dir / "config.yaml"
    themes_models = args.work.resolve() / "themes-models" if args.reuse_themes_model else run_dir / "themes-models"
    config.write_text(config_text(dumps, lake, run_dir, sections, themes_models), encoding="utf-8")
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=os.environ.get("EDUMINE_PSEUDONYM_KEY", "edumine-benchmark-key"),
               PREFECT_HOME=str(run_dir / "prefect"))
    command = [str(ROOT / ".venv" / "bin" / "edumine"), "run", "--config", str(config),
               *(["--task-runner", args.task_runner] if args.task_runner != "default" else []),
               *[part for item in args.overrides for part in ("--set", item)]]
    if args.prefect_server:  # started and waited for outside the timing, stopped when this script exits
        env["PREFECT_API_URL"] = running_prefect_server(env)

    commit, shown = commit_label(), shown_command()
    first = timed_run(command, env, run_dir / "run.log", lake, sections)
    records = counts["post"] + counts["comment"]
    if args.snapshot is not None:
        from pipeline_nightly import run_figures, save_snapshot

        save_snapshot(args.snapshot.resolve(), work, run_figures(first, records), held_back,
                      {"n": args.n, "share": args.nightly, "commit": commit, "records_full": records,
                       "overrides": args.overrides, "prefect_server": args.prefect_server, "disabled": args.disable})
    if nightly:
        new_counts = write_dumps(held_back, dumps, stem="nightly")
        second = timed_run(command, env, run_dir / "nightly.log", lake, sections)
        from pipeline_nightly import run_figures

        runs = {"full": run_figures(first, records),
                "nightly": run_figures(second, new_counts["post"] + new_counts["comment"])}
        result = {"n": args.n, "share": args.nightly, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  "commit": commit, "command": shown, "measured_command": f"/usr/bin/time -v {shlex.join(command)}",
                  "records_full": records, "records_new": new_counts["post"] + new_counts["comment"],
                  "ratio_wall": runs["nightly"]["process"]["wall_seconds"] / runs["full"]["process"]["wall_seconds"],
                  "ratio_stages": runs["nightly"]["stage_seconds_total"] / runs["full"]["stage_seconds_total"],
                  **runs}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"pipeline-nightly-{args.n}.json").write_text(json.dumps(result, indent=2, default=str) + "\n",
                                                                    encoding="utf-8")
        block = nightly_markdown(result)
        if not args.no_docs:
            update_block(args.docs, block, f"pipeline-nightly {args.n}")
        sys.stdout.write(block)
        return

    manifest = first["manifest"]
    report = lake / "report.html"
    result: dict[str, Any] = {
        "n": args.n, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "command": shown, "overrides": args.overrides,
        "measured_command": f"/usr/bin/time -v {shlex.join(command)}",
        "records": counts, "load_before": first["load_before"], "load_after": first["load_after"],
        "process": first["process"],
        "stages": stage_rows(manifest, records),
        "stage_seconds_total": round(sum(manifest["timings"].values()), 1),
        "report_bytes": report.stat().st_size if report.exists() else None,
        "themes_classifier": manifest["config"]["themes"]["classifier"],
        "themes_model": ("not run" if "themes" not in manifest["outputs"] else "trained in this run"
                         if manifest["outputs"]["themes"].get("trained_now") else "reused (trained before the run)"),
        "reply_structure": reply_structure(lake),
        "outputs": manifest["outputs"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    variant = "".join(f"-{item.split('=', 1)[-1]}" for item in args.overrides)
    path = args.out / f"pipeline-{args.n}{variant}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    if not args.no_docs:
        update_block(args.docs, markdown(result), block_name(result))
    sys.stdout.write(markdown(result))


if __name__ == "__main__":
    main()
