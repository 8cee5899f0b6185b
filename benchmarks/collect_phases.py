"""CPU per phase of collecting one dump, in one process: the bare loop, decompression, parsing and normalising
record at a time (the reference) and column at a time (the default), staging and the merge.

    .venv/bin/python benchmarks/collect_phases.py benchmarks/out/RC_speed_100000.zst

(the dump: ``benchmarks/collect_speed.py --lines 100000`` builds it). ``time.process_time`` per phase, µs a record;
the column-at-a-time pass runs twice (the first pays for warming the allocator, as only a long run's first blocks
do). Results: benchmarks/results/collect.md.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from edumine.lake import Lake, PostsWriter
from edumine.miners.base import ReadStats
from edumine.miners.batches import Settings, run_job
from edumine.miners.records import plausible_range
from edumine.miners.reddit_dumps import RedditDumpSource
from edumine.privacy import Pseudonymiser


def main(path: str) -> None:
    clock = time.process_time
    phases: dict[str, float] = {}
    started = clock()
    with open(path, "rb") as handle:
        reader = io.TextIOWrapper(zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle),
                                  encoding="utf-8")
        lines = sum(1 for line in reader if line.strip() and json.loads(line) is not None)
    phases["bare zstd + json.loads loop"] = clock() - started
    started = clock()
    jobs = list(RedditDumpSource(paths=[path]).batch_jobs(ReadStats()))
    phases["decompressing into blocks"] = clock() - started
    batches = []
    for name, columnar in (("record at a time", False), ("column at a time", True),
                           ("column at a time, again", True)):
        settings = Settings("speed", "reddit.dumps.v1", "run", plausible_range(), "exclude",
                            Pseudonymiser(b"benchmark-key"), columnar=columnar)
        started = clock()
        batches = [run_job(job, dataclasses.replace(settings)) for job in jobs]
        phases[f"parse, normalise, prepare: {name}"] = clock() - started
    folder = Path(tempfile.mkdtemp(prefix="collect-phases-"))
    try:
        writer = PostsWriter(Lake(folder), "run")
        started = clock()
        for batch in batches:
            if batch.table is not None:
                writer.add_table(batch.table)
        phases["staging"] = clock() - started
        started = clock()
        writer.commit()
        phases["merge and atomic writes"] = clock() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    sys.stdout.write(json.dumps({"lines": lines, "us_per_record": {k: round(v / lines * 1e6, 1)
                                                                    for k, v in phases.items()}}, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
