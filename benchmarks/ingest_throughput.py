"""Ingest throughput on a large Pushshift-style dump generated from the real corpora.

    .venv/bin/python benchmarks/ingest_throughput.py [--lines 1000000]

Generates ``benchmarks/out/RS_bench.zst`` (once) by cycling the real r/teaching and r/teachingresources
records of ``../shared/corpora`` with fresh ids and times, then measures in separate processes (so that
peak RSS is each phase's own):
  plain   - zstd stream + ``json.loads`` per line (the baseline a researcher would write)
  reader  - ``reddit.dumps.v1`` reading and normalising every record (no lake)
  ingest  - the whole collection into a fresh lake: read, pseudonymise, stage, merge, write Parquet
and prints records/s and peak RSS per phase as a table and JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "reddit-teaching-2017-18"
OUT = ROOT / "benchmarks" / "out"


def generate(path: Path, lines: int) -> None:
    import orjson
    import zstandard

    base = []
    for name in ("teaching_submissions.zst", "teachingresources_submissions.zst", "teachingresources_comments.zst"):
        with open(CORPUS / name, "rb") as handle:
            reader = io.BufferedReader(zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle))
            base += [orjson.loads(line) for line in reader if line.strip()]
    start = 1483228800  # 2017-01-01
    span = 2 * 365 * 86400
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as raw, zstandard.ZstdCompressor(level=3, threads=2).stream_writer(raw) as out:
        for i in range(lines):
            obj = dict(base[i % len(base)])
            obj["id"] = f"b{i:x}"
            obj["created_utc"] = start + (i * span) // lines
            if "link_id" in obj:
                obj["link_id"] = obj["parent_id"] = f"t3_b{max(i - 1, 0):x}"
            out.write(orjson.dumps(obj) + b"\n")
    tmp.replace(path)


def phase_plain(path: Path) -> int:
    import zstandard

    count = 0
    with open(path, "rb") as handle:
        reader = io.TextIOWrapper(zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle),
                                  encoding="utf-8")
        for line in reader:
            if line.strip():
                json.loads(line)
                count += 1
    return count


def phase_reader(path: Path) -> int:
    from edumine.miners.base import ReadStats
    from edumine.miners.reddit_dumps import RedditDumpSource

    return sum(1 for _ in RedditDumpSource(paths=[str(path)]).read(ReadStats()))


def phase_ingest(path: Path) -> int:
    from edumine.config import load_config
    from edumine.pipelines.runner import run_collect

    os.environ.setdefault("EDUMINE_PSEUDONYM_KEY", "benchmark-key")
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(data={"lake": f"{tmp}/lake", "sources": [{"kind": "reddit.dumps.v1", "paths": [str(path)]}]})
        return run_collect(config).inputs[0]["added"]


PHASES = {"plain": phase_plain, "reader": phase_reader, "ingest": phase_ingest}


def run_phase(name: str, path: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--phase", name, "--file", str(path)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.phase:
        started = time.perf_counter()
        records = PHASES[args.phase](args.file)
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sys.stdout.write(json.dumps({"phase": args.phase, "records": records, "seconds": round(seconds, 2),
                                     "records_per_s": round(records / seconds), "peak_rss_mb": round(peak_mb)}) + "\n")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"RS_bench_{args.lines}.zst"
    if not path.exists():
        started = time.perf_counter()
        generate(path, args.lines)
        sys.stderr.write(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f}s\n")
    load = os.getloadavg()
    results = [run_phase(name, path) for name in PHASES]
    sys.stdout.write(f"{'phase':8} {'records':>10} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}\n")
    for r in results:
        sys.stdout.write(f"{r['phase']:8} {r['records']:>10,} {r['seconds']:>8} {r['records_per_s']:>10,} "
                         f"{r['peak_rss_mb']:>12,}\n")
    sys.stdout.write(json.dumps({"lines": args.lines, "load_avg_at_start": [round(x, 2) for x in load],
                                 "cores": os.cpu_count(), "results": results}) + "\n")


if __name__ == "__main__":
    main()
