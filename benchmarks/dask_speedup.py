"""The heavy stages in one process and on Dask, side by side: the same ``edumine run`` over N real-based
contributions, once with the default task runner and once with ``--task-runner dask`` (a LocalCluster of
``--workers`` worker processes), each a whole process under ``/usr/bin/time -v`` on a fresh lake, then the two
lakes compared table by table (``scripts/compare_lakes.py``).

    nice -n 10 .venv/bin/python benchmarks/dask_speedup.py --n 100000 --workers 2 \
        [--stages preprocess topics themes] [--set themes.classifier=themes.tfidf_logreg.v1]

The corpus and config are ``benchmarks/pipeline_scale.py``'s (the same dumps; ``--stages`` keeps only the named
stages on, default: the heavy ones, preprocess, topics and themes; ``--set`` adds config overrides to both
runs). Reported per stage: seconds in each run and the speed-up; whole process: wall seconds, peak RSS (of the
process or its largest child: the workers are children of the flow's process), the load average before and
after each run. JSON ``benchmarks/out/dask-speedup-N.json``, table ``dask-speedup N`` in
``benchmarks/results/performance.md`` (``--no-docs``: JSON only).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))

from pipeline_scale import (DOCS, DUMPS_FORMAT, config_text, stage_sections, timed_run, update_block,  # noqa: E402
                            write_dumps)

HEAVY = ("preprocess", "topics", "themes")


def cpu_of(log: Path) -> dict[str, Any]:
    """CPU seconds (user + system) and the share of a core the run got, from ``time -v``'s report."""
    import re

    text = log.read_text(encoding="utf-8", errors="replace")
    user, system = (float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", text).group(1))
                    for kind in ("User", "System"))
    percent = re.search(r"Percent of CPU this job got: (\d+)%", text)
    return {"cpu_seconds": round(user + system, 1), "cpu_percent": int(percent.group(1)) if percent else None}


def markdown(result: dict[str, Any]) -> str:
    n = result["n"]
    runs = result["runs"]
    lines = [f"<!-- dask-speedup {n} start (written by benchmarks/dask_speedup.py) -->",
             f"### Dask: {result['records']:,} contributions, in-process vs {result['workers']} local worker "
             f"processes, {result['date']}", "",
             "| stage | in-process (s) | Dask (s) | speed-up |", "|---|---:|---:|---:|"]
    for stage, plain in runs["default"]["timings"].items():
        other = runs["dask"]["timings"].get(stage)
        speed = f"{plain / other:.2f}x" if other else ""
        lines.append(f"| {stage} | {plain:,.1f} | {'' if other is None else f'{other:,.1f}'} | {speed} |")
    wall = {name: run["process"]["wall_seconds"] for name, run in runs.items()}
    cpu = {name: run["process"].get("cpu") or {} for name, run in runs.items()}
    lines += ["",
              f"- whole process (`/usr/bin/time -v`): in-process **{wall['default']:,.1f} s** "
              f"({runs['default']['process']['peak_rss_mb']:,} MiB peak), Dask **{wall['dask']:,.1f} s** "
              f"({runs['dask']['process']['peak_rss_mb']:,} MiB peak of the largest process): "
              f"**{wall['default'] / wall['dask']:.2f}x**",
              f"- CPU (`time -v`, the flow's process and its children, workers included): in-process "
              f"{cpu['default'].get('cpu_seconds')} CPU-s at {cpu['default'].get('cpu_percent')} % of one core, Dask "
              f"{cpu['dask'].get('cpu_seconds')} CPU-s at {cpu['dask'].get('cpu_percent')} % (two idle cores would "
              "allow up to 200 %)",
              f"- tables identical (compare_lakes): **{result['identical']}** ({result['tables_compared']} tables)",
              f"- stages on: {', '.join(result['stages'])}; overrides: {result['overrides'] or 'none'}",
              f"- load average (1, 5, 15 min): in-process before {runs['default']['load_before']}, after "
              f"{runs['default']['load_after']}; Dask before {runs['dask']['load_before']}, after "
              f"{runs['dask']['load_after']}; {os.cpu_count()} CPUs; commit `{result['commit']}`",
              f"- command: `{result['command']}`",
              f"<!-- dask-speedup {n} end -->"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stages", nargs="*", default=list(HEAVY), help="stages left on (default: the heavy ones)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "cache" / "scale")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()

    from compare_lakes import RUN_COLUMNS, compare
    from scaled_corpus import scaled_forest
    from topics_benchmark import base_records

    work = args.work.resolve() / str(args.n)
    dumps = work / "dumps"
    counts_path = dumps / "counts.json"
    counts = json.loads(counts_path.read_text()) if counts_path.exists() else {}
    if counts.get("format") != DUMPS_FORMAT:
        counts = write_dumps(scaled_forest(base_records(ROOT / "data" / "cache" / "bench", deleted=True), args.n),
                             dumps)
        counts_path.write_text(json.dumps(counts) + "\n")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()  # the code measured: read before the runs
    sections = {name: section for name, section in stage_sections().items() if name in args.stages}
    runs: dict[str, Any] = {}
    lakes: dict[str, Path] = {}
    for runner in ("default", "dask"):
        run_dir = work / f"speedup-{runner}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        lakes[runner] = run_dir / "lake"
        config = run_dir / "config.yaml"
        # One theme model for both runs (trained by the first): the runs differ in the task runner alone.
        config.write_text(config_text(dumps, lakes[runner], run_dir, sections, work / "speedup-themes-models"),
                          encoding="utf-8")
        env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=os.environ.get("EDUMINE_PSEUDONYM_KEY", "edumine-benchmark-key"),
                   PREFECT_HOME=str(run_dir / "prefect"), EDUMINE_DASK_WORKERS=str(args.workers))
        command = [str(ROOT / ".venv" / "bin" / "edumine"), "run", "--config", str(config),
                   *[part for item in args.overrides for part in ("--set", item)],
                   *(["--task-runner", "dask"] if runner == "dask" else [])]
        timed = timed_run(command, env, run_dir / "run.log", lakes[runner], sections)
        timed["process"]["cpu"] = cpu_of(run_dir / "run.log")
        manifest = timed["manifest"]
        runs[runner] = {"process": timed["process"], "load_before": timed["load_before"],
                        "load_after": timed["load_after"], "timings": manifest["timings"],
                        "docs_per_s": manifest.get("docs_per_s"), "command": shlex.join(command)}
        sys.stdout.write(f"{runner}: {timed['process']['wall_seconds']} s {manifest['timings']}\n")
    shown = io.StringIO()
    with redirect_stdout(shown):
        identical = compare(lakes["default"], lakes["dask"], RUN_COLUMNS, {})
    result = {"n": args.n, "records": counts["post"] + counts["comment"], "workers": args.workers,
              "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
              "command": ("nice -n 10 " if os.nice(0) >= 10 else "") + shlex.join(
                  [".venv/bin/python", "benchmarks/dask_speedup.py", *sys.argv[1:]]),
              "stages": sorted(sections), "overrides": args.overrides, "identical": identical,
              "comparison": shown.getvalue().splitlines(), "tables_compared": len(shown.getvalue().splitlines()),
              "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"dask-speedup-{args.n}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if not args.no_docs:
        update_block(args.docs, markdown(result), f"dask-speedup {args.n}")
    sys.stdout.write(shown.getvalue() + markdown(result))


if __name__ == "__main__":
    main()
