"""Collection at parse speed: ``edumine collect`` of one large Pushshift dump against a bare parse loop.

    .venv/bin/python benchmarks/collect_speed.py --lines 1000000 [--repeats 3] [--no-docs]

The dump (``benchmarks/out/RC_speed_<lines>.zst``, built once) holds real lines only: every submission and
comment of ``../shared/corpora/reddit-teaching-2017-18`` and every line of
``../shared/fixtures/pushshift-eras`` (2005..2024 shapes: ``created_utc`` as int, float and numeric string,
``_meta``, ``retrieved_utc``, missing ``name``), repeated until ``lines``. Copy k of a line gets fresh ids
(``id``, ``name``, ``link_id``, ``parent_id`` suffixed with k, so a copy's comments answer the copy's posts) and
copy k's author is another person (``author`` suffixed, so pseudonymisation hashes ~540 k distinct names at
1 M); text, times, communities and every other field are as the real line had them.

Two whole processes, each under ``/usr/bin/time -v``, alternated ``repeats`` times (medians reported):
  bare     - ``python -c`` that streams the file through zstandard and ``json.loads`` each line (what a
             researcher would write to read a dump; no normalisation, nothing written)
  collect  - ``edumine collect`` of the dump into a fresh lake with the default config (reading, normalising,
             quarantining, pseudonymising, staging, merging, atomic Parquet writes, manifest; in process, as
             the command runs without PREFECT_API_URL)
  prefect  - with ``--with-prefect``: ``edumine collect --prefect`` (the same as a Prefect flow, which starts
             and stops a temporary Prefect server)
The JSON goes to ``benchmarks/out/collect-speed-<lines>.json``, a table to ``benchmarks/results/collect.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpora" / "reddit-teaching-2017-18"
ERAS = SHARED / "fixtures" / "pushshift-eras"
OUT = ROOT / "benchmarks" / "out"
DOCS = ROOT / "benchmarks" / "results" / "collect.md"
FORMAT = "speed.v1"  # bump when the dump's content changes

BARE = """
import io, json, sys, zstandard
count = 0
with open(sys.argv[1], "rb") as handle:
    reader = io.TextIOWrapper(zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle), encoding="utf-8")
    for line in reader:
        if line.strip():
            json.loads(line)
            count += 1
print(count)
"""


def base_lines() -> list[dict[str, Any]]:
    import orjson
    import zstandard

    lines: list[dict[str, Any]] = []
    for path in sorted(CORPUS.glob("*.zst")):
        with open(path, "rb") as handle:
            reader = io.BufferedReader(zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle))
            lines += [orjson.loads(line) for line in reader if line.strip()]
    for path in sorted(ERAS.glob("*.ndjson")):
        lines += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return lines


def _suffixed(value: Any, copy: int) -> Any:
    return value if copy == 0 or not isinstance(value, str) or not value else f"{value}c{copy:x}"


def generate(path: Path, lines: int) -> dict[str, Any]:
    import orjson
    import zstandard

    base = base_lines()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
        for i in range(lines):
            copy, index = divmod(i, len(base))
            obj = dict(base[index])
            for name in ("id", "name", "link_id", "parent_id"):
                if name in obj:
                    obj[name] = _suffixed(obj[name], copy)
            if obj.get("author") not in (None, "[deleted]", "[removed]"):
                obj["author"] = _suffixed(obj["author"], copy)
            out.write(orjson.dumps(obj) + b"\n")
    tmp.replace(path)
    return {"format": FORMAT, "lines": lines, "base_lines": len(base), "bytes": path.stat().st_size}


def timed(command: list[str], *, env: dict[str, str], log: Path) -> dict[str, Any]:
    """One whole process under ``/usr/bin/time -v``: wall seconds, peak RSS (MB), CPU seconds."""
    with open(log, "w") as handle:
        subprocess.run(["/usr/bin/time", "-v", *command], env=env, cwd=ROOT, stdout=handle,
                       stderr=subprocess.STDOUT, check=True)
    text = log.read_text()

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", text).group(1).strip()  # type: ignore[union-attr]

    clock = [float(x) for x in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(x * 60 ** i for i, x in enumerate(reversed(clock)))
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(int(field("Maximum resident set size (kbytes)")) / 1024),
            "cpu_s": round(float(field("User time (seconds)")) + float(field("System time (seconds)")), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--workers", type=int, help="the source's workers (default: the collector decides)")
    parser.add_argument("--with-prefect", action="store_true", help="also time `edumine collect --prefect`")
    parser.add_argument("--baseline", help="another checkout's edumine command (e.g. /work/main/.venv/bin/edumine), "
                                           "measured the same way beside this one")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    dump = OUT / f"RC_speed_{args.lines}.zst"
    info_path = dump.with_suffix(".json")
    if not dump.exists() or not info_path.exists() or json.loads(info_path.read_text()).get("format") != FORMAT:
        started = time.perf_counter()
        info = generate(dump, args.lines)
        info_path.write_text(json.dumps(info))
        sys.stderr.write(f"generated {dump} ({info['bytes'] / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s\n")
    work = OUT / f"collect-speed-{args.lines}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY="benchmark-key", PYTHONHASHSEED="0")
    python = sys.executable
    edumine = str(Path(python).parent / "edumine")
    commands = {"collect": [edumine], **({"prefect": [edumine, "--prefect"]} if args.with_prefect else {}),
                **({"baseline": [args.baseline]} if args.baseline else {})}
    env.pop("PREFECT_API_URL", None)
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], **{name: [] for name in commands}}
    records = None
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        runs["bare"].append(timed([python, "-c", BARE, str(dump)], env=env, log=work / f"bare-{repeat}.log"))
        for name, command in commands.items():
            lake = work / f"lake-{name}-{repeat}"
            config = work / f"{name}-{repeat}.yaml"
            source = {"kind": "reddit.dumps.v1", "paths": [str(dump)]}
            if args.workers is not None and name == "collect":
                source["workers"] = args.workers
            config.write_text(json.dumps({"lake": str(lake), "sources": [source]}))
            runs[name].append(timed([command[0], "collect", "-c", str(config), *command[1:]], env=env,
                                    log=work / f"{name}-{repeat}.log"))
            log_text = (work / f"{name}-{repeat}.log").read_text()
            runs[name][-1]["temporary_server"] = "Starting temporary server" in log_text
            manifest = json.loads(sorted((lake / "runs").glob("*/manifest.json"))[-1].read_text())
            source = manifest["inputs"][0]
            records = source["records"] + source["quarantined_total"]
            runs[name][-1].update(records=source["records"], quarantined=source["quarantined_total"],
                                  added=source["added"], stage_s=manifest["timings"]["collect"])
            shutil.rmtree(lake)
        sys.stderr.write(f"repeat {repeat}: " + ", ".join(f"{k} {v[-1]}" for k, v in runs.items()) + "\n")
    load_after = os.getloadavg()
    lines = args.lines
    summary = {name: {"wall_s": statistics.median(r["wall_s"] for r in rs),
                      "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
                      "cpu_s": statistics.median(r["cpu_s"] for r in rs)} for name, rs in runs.items()}
    for name in summary:
        summary[name]["records_per_s"] = round(lines / summary[name]["wall_s"])
    for name in commands:
        stage = statistics.median(r["stage_s"] for r in runs[name])
        summary[f"{name}_stage"] = {"wall_s": stage, "records_per_s": round(lines / stage)}
    result = {"lines": lines, "records_read": records, "repeats": args.repeats, "cores": os.cpu_count(),
              "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
              "summary": summary, "runs": runs,
              "ratio": round(summary["collect"]["records_per_s"] / summary["bare"]["records_per_s"], 2),
              "stage_ratio": round(summary["collect_stage"]["records_per_s"] / summary["bare"]["records_per_s"], 2),
              "workers": args.workers, "baseline": args.baseline, "baseline_commit": _commit(Path(args.baseline).resolve().parents[2])
              if args.baseline else None, "commit": _commit(ROOT),
              "commands": {"bare": f"/usr/bin/time -v python -c <bare loop> {dump.name}",
                           "collect": "/usr/bin/time -v edumine collect -c <config: one reddit.dumps.v1 source>"}}
    (OUT / f"collect-speed-{lines}.json").write_text(json.dumps(result, indent=2))
    sys.stdout.write(json.dumps(result) + "\n")
    if not args.no_docs:
        write_docs(result)


def _commit(folder: Path) -> str:
    found = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or "?"


def write_docs(result: dict[str, Any]) -> None:
    s = result["summary"]
    title = f"### Collection at parse speed, {result['lines']:,} lines" + \
        (f", {result['workers']} workers" if result.get("workers") is not None else "")
    # (without --workers the collector decides: none on a machine with no idle core)
    table = [title, "",
             f"`.venv/bin/python benchmarks/collect_speed.py --lines {result['lines']} --repeats {result['repeats']}"
             + (f" --workers {result['workers']}" if result.get("workers") is not None else "")
             + (" --with-prefect" if "prefect" in s else "")
             + (f" --baseline {result['baseline']}" if result["baseline"] else "") + "`: "
             f"whole processes under `/usr/bin/time -v`, alternated, medians of {result['repeats']}; "
             f"{result['cores']} cores, load {result['load_before'][0]} before, {result['load_after'][0]} after.", "",
             "| process | wall s | records/s | CPU s | peak RSS MB |", "|---|---|---|---|---|"]
    rows = [("bare", "bare zstd + `json.loads` loop"), ("collect", "`edumine collect` (this branch)")]
    if "prefect" in s:
        rows.append(("prefect", "`edumine collect --prefect` (this branch, a Prefect flow)"))
    if "baseline" in s:
        rows.append(("baseline", f"`edumine collect` before (commit {result['baseline_commit']})"))
    for name, label in rows:
        table.append(f"| {label} | {s[name]['wall_s']} | {s[name]['records_per_s']:,} | {s[name]['cpu_s']} | "
                     f"{s[name]['peak_rss_mb']:,} |")
    for name, label in rows[1:]:
        table.append(f"| the collect stage inside {label} (manifest `timings.collect`) | {s[name + '_stage']['wall_s']} | "
                     f"{s[name + '_stage']['records_per_s']:,} | | |")
    table += ["", f"collect / bare: **{result['ratio']}×** ({result['runs']['collect'][-1]['records']:,} records "
                  f"stored, {result['runs']['collect'][-1]['quarantined']:,} quarantined); the collect stage alone / bare: "
                  f"**{result['stage_ratio']}×**. "
                  + "; ".join(f"{label.split(' (')[0]}: {'a' if result['runs'][name][-1].get('temporary_server') else 'no'} "
                              "temporary Prefect server" for name, label in rows[1:]) + ".", ""]
    text = DOCS.read_text() if DOCS.exists() else "# Results: collection at parse speed\n"
    pattern = re.compile(rf"{re.escape(title)}\n.*?(?=\n### |\n## |\Z)", re.S)
    block = "\n".join(table)
    text = pattern.sub(lambda _: block.rstrip("\n") + "\n", text) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + block
    DOCS.write_text(text)


if __name__ == "__main__":
    main()
