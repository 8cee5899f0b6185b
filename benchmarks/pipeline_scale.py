"""The real pipeline at scale: ``edumine run`` (preprocess + topics) over N scaled real posts, its own peak RSS.

    .venv/bin/python benchmarks/pipeline_scale.py --n 1000000 [--work data/cache/scale]

Writes the N-record scaled corpus (benchmarks/scaled_corpus.py: the real posts and comments of
../shared/corpora, then near-duplicates) as Pushshift-style NDJSON dumps (``.zst``), collects them into a
fresh lake with ``edumine collect``, then runs ``edumine run`` with only the ``preprocess`` and ``topics``
stages enabled, in its own process under ``/usr/bin/time -v``. Collection is a separate process so that the
measured peak resident memory is that of preprocessing, embedding and the topic fit (plus the collect
pass of ``run``, which finds every record already stored). Reports wall time, peak RSS (``time -v`` and
the manifest's per-stage ``peak_rss_mb``), the stages' own timings and the topic scores, as JSON in
``benchmarks/out/pipeline-N.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

STAGES_OFF = ("lineage", "themes", "metrics", "store", "report")


def write_dumps(records: Any, folder: Path) -> dict[str, int]:
    """Scaled records as Pushshift submission and comment dumps, with fresh base-36 ids."""
    import numpy as np
    import orjson
    import zstandard

    folder.mkdir(parents=True, exist_ok=True)
    counts = {"post": 0, "comment": 0}
    # One compressor per stream: a ZstdCompressor's context cannot serve two open streams.
    with open(folder / "RS_scaled.zst", "wb") as posts_raw, open(folder / "RC_scaled.zst", "wb") as comments_raw, \
            zstandard.ZstdCompressor(level=3).stream_writer(posts_raw) as posts, \
            zstandard.ZstdCompressor(level=3).stream_writer(comments_raw) as comments:
        for index, record in enumerate(records):
            created = int(np.datetime64(record["created_at"][:19], "s").astype(np.int64))
            common = {"id": np.base_repr(index + 10**9, 36).lower(), "created_utc": created,
                      "subreddit": record["community"], "author": f"bench_{index % 50_000}", "score": 1}
            if record["kind"] == "comment":
                line = {**common, "body": record["body"] or "", "link_id": "t3_bench", "parent_id": "t3_bench"}
                comments.write(orjson.dumps(line) + b"\n")
            else:
                line = {**common, "title": record["title"] or "", "selftext": record["body"] or "",
                        "is_self": not record.get("link_url"), "url": record.get("link_url") or ""}
                posts.write(orjson.dumps(line) + b"\n")
            counts[record["kind"]] += 1
    return counts


def config_text(dumps: Path, lake: Path) -> str:
    off = "\n".join(f"{stage}: {{enabled: false}}" for stage in STAGES_OFF)
    return (f"lake: {lake}\nsources:\n  - kind: reddit.dumps.v1\n    name: scaled\n"
            f"    paths: [\"{dumps}/*.zst\"]\nwindows: {{unit: semester}}\n{off}\n")


def timed(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-4000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return {"wall_seconds": round(wall, 1), "peak_rss_gb": round(peak_kb / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "cache" / "scale")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()

    from scaled_corpus import scaled_records
    from topics_benchmark import base_records

    work = args.work / str(args.n)
    dumps, lake = work / "dumps", work / "lake"
    if not (dumps / "RS_scaled.zst").exists():
        counts = write_dumps(scaled_records(base_records(ROOT / "data" / "cache" / "bench"), args.n), dumps)
        (dumps / "counts.json").write_text(json.dumps(counts))
    if lake.exists():
        subprocess.run(["rm", "-rf", str(lake)], check=True)
    config = work / "config.yaml"
    config.write_text(config_text(dumps, lake), encoding="utf-8")
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=os.environ.get("EDUMINE_PSEUDONYM_KEY", "edumine-benchmark-key"),
               PREFECT_HOME=str(work / "prefect"))
    edumine = str(ROOT / ".venv" / "bin" / "edumine")

    result: dict[str, Any] = {"n": args.n, "records": json.loads((dumps / "counts.json").read_text()),
                              "load_before": os.getloadavg()}
    result["collect"] = timed([edumine, "collect", "--config", str(config)], env)
    result["run"] = timed([edumine, "run", "--config", str(config)], env)
    manifests = sorted((lake / "runs").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    manifest = json.loads(manifests[-1].read_text())
    result["stage_seconds"] = manifest["timings"]
    result["stage_peak_rss_mb"] = manifest["peak_rss_mb"]
    result["preprocess"] = manifest["outputs"]["preprocess"]
    topics = manifest["outputs"]["topics"]
    result["topics"] = {key: topics.get(key) for key in ("docs", "seconds", "scores", "mode")}
    result["load_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"pipeline-{args.n}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
