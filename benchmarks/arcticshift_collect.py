"""``reddit.arcticshift.v1`` against the local Arctic Shift double: requests and time per collected item.

    .venv/bin/python benchmarks/arcticshift_collect.py [--posts 2000] [--comments-per-post 5]

Seeds the double (tests/servers/arcticshift.py) with 20 days of real r/teaching texts, three posts per second
(ties at page boundaries), then runs the whole collection twice into a fresh lake (real httpx, real ingest): a
first run and a nightly run that finds 1 % new items (it re-reads the two days before its mark, for Arctic
Shift's second retrieval). The rate limit is lifted (the public API's polite default is 30
requests a minute, so on the real service the request count, not this time, is what a run costs: requests / 30
minutes). Prints requests, seconds and items per second per run as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--comments-per-post", type=int, default=5)
    args = parser.parse_args()

    from servers.arcticshift import ArcticShiftDouble

    from edumine.config import load_config
    from edumine.pipelines.runner import run_collect

    results = {}
    with ArcticShiftDouble(ratelimit_budget=10**9) as double, tempfile.TemporaryDirectory() as tmp:
        start = double.clock
        for day in range(20):                          # 20 days of activity, as a month-old subreddit would have
            double.clock = start + day * 86400
            double.seed("Teachers", args.posts // 20, args.comments_per_post, start=day * 7, same_second=3)
        overrides = [f"lake={Path(tmp) / 'lake'}", f"privacy.key_file={Path(tmp) / 'key'}",
                     f"sources.0.base_url={double.url}", "sources.0.requests_per_minute=1000000"]
        for name in ("first", "nightly"):
            if name == "nightly":
                double.clock = start + 19.5 * 86400    # half a day after the last activity, still in the past
                double.seed("Teachers", args.posts // 100, args.comments_per_post, start=500)
            before = len(double.requests)
            started = time.perf_counter()
            config = load_config(ROOT / "configs" / "arcticshift-example.yaml", overrides)
            report = json.loads(run_collect(config).manifest_path.read_text())["inputs"][0]
            seconds = time.perf_counter() - started
            results[name] = {"records": report["records"], "added": report["added"],
                             "requests": len(double.requests) - before, "seconds": round(seconds, 2),
                             "records_per_second": round(report["records"] / seconds, 1)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
