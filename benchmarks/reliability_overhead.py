"""What per-record isolation and crash consistency cost (docs/reliability.md).

    python benchmarks/reliability_overhead.py [LAKE]

1. ``normalise_record`` per record (the guarded normaliser every record passes), on 200,000 dump-shaped records;
2. on a copy of LAKE (default: none, skipped): the run-start checks (``verify_derived``), the snapshot a pipeline
   run takes (``begin``) and removes (``commit``), and a rollback (``recover``), with the number of derived files.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from edumine import recovery
from edumine.miners.records import normalise_record, plausible_range


def records(n: int) -> list[dict]:
    created = datetime(2018, 1, 1, tzinfo=timezone.utc)
    return [{"uid": f"reddit:post:{i}", "platform": "reddit", "community": "teaching", "kind": "post", "id": str(i),
             "parent_uid": None, "thread_uid": f"reddit:post:{i}", "author": f"user{i}", "created_at": created,
             "title": "a title of a post", "body": "a body " * 40, "url": "https://www.reddit.com/r/teaching/x/",
             "link_url": None, "flair": None, "score": 3, "num_comments": 2, "removal": None, "is_edited": False,
             "edited_at": None, "retrieved_at": created} for i in range(n)]


def main() -> None:
    batch = records(200_000)
    plausible, counts = plausible_range(), Counter()
    started = time.perf_counter()
    for record in batch:
        normalise_record(record, plausible=plausible, counts=counts)
    seconds = time.perf_counter() - started
    print(f"normalise_record: {len(batch):,} records in {seconds:.2f} s = {seconds / len(batch) * 1e6:.1f} us/record")
    if len(sys.argv) < 2:
        return
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        shutil.copytree(sys.argv[1], lake)
        files = len(recovery.derived_files(lake))
        for name, step in (("verify_derived", lambda: recovery.verify_derived(lake)),
                           ("begin (snapshot)", lambda: recovery.begin(lake, "bench")),
                           ("recover (rollback)", lambda: recovery.recover(lake)),
                           ("begin again", lambda: recovery.begin(lake, "bench2")),
                           ("commit", lambda: recovery.commit(lake))):
            started = time.perf_counter()
            step()
            print(f"{name}: {time.perf_counter() - started:.3f} s over {files:,} derived files")


if __name__ == "__main__":
    main()
