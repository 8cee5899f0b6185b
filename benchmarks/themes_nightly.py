"""The theme stage's cost on a nightly run (+1 % newest contributions) against a full run, at N contributions.

    nice -n 19 .venv/bin/python benchmarks/themes_nightly.py --n 20000 [--share 0.01] [--classifier NAME]
        [--repeat 3] [--work data/cache/themes-nightly] [--label after] [--set eval_folds=0 ...]

The real-based corpus of benchmarks/pipeline_scale.py (``scaled_forest``, posts and comments with their reply
structure) is split by created_at: the newest ``share`` is held back. In this process: preprocess and themes
over the older records on a fresh lake (the theme model is trained before the timing, in ``<work>/themes-models``,
shared by every label), then the held-back records arrive as two more dumps, preprocess runs, and the theme
stage alone is timed ``--repeat`` times on the same lake state (its tables restored between repeats). Reported
(JSON on stdout and ``<work>/<label>.json``): the full and nightly theme stage seconds (the runner's wall-clock timing, and the CPU seconds of the
whole ``run_pipeline`` call, which a loaded machine disturbs less),
the nightly stage summary (docs scored, prevalence groups recomputed and kept) and the load average.

``--classifier`` defaults to the default config's; ``themes.tfidf_logreg.v1`` isolates the stage's own work
from MiniLM encoding (which only new docs cost, before and after). Running the same script with an older
edumine first on ``PYTHONPATH`` gives a before figure on the same corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
# restored before each timed nightly run: the stage's tables and the docs' vector cache (new docs are encoded
# in every repeat, as in a real nightly run)
STATE = ("doc_themes", "theme_prevalence", "theme_windows", "cache/embeddings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--classifier", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "cache" / "themes-nightly")
    parser.add_argument("--label", default="run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a themes setting (YAML value), e.g. eval_folds=0 to train the model faster")
    args = parser.parse_args()

    os.environ.setdefault("EDUMINE_PSEUDONYM_KEY", "edumine-benchmark-key")
    import yaml

    import edumine
    from edumine.config import load_config
    from edumine.models.themes.classifier import load_or_train
    from edumine.pipelines.runner import run_pipeline
    from pipeline_scale import split_newest, write_dumps
    from scaled_corpus import scaled_forest
    from topics_benchmark import base_records

    load_start = list(os.getloadavg())
    work = args.work.resolve()
    dumps, held = work / "dumps", work / "held-back"
    if not (held / "done").exists():  # the corpus once per work folder, shared by every label
        shutil.rmtree(dumps, ignore_errors=True)
        shutil.rmtree(held, ignore_errors=True)
        older, newest = split_newest(list(scaled_forest(base_records(ROOT / "data" / "cache" / "bench", deleted=True),
                                                        args.n)), args.share)
        write_dumps(older, dumps, stem="base")
        write_dumps(newest, held, stem="nightly")
        (held / "done").write_text("")
    run_dir = work / args.label
    shutil.rmtree(run_dir, ignore_errors=True)
    source = run_dir / "dumps"
    shutil.copytree(dumps, source)
    themes = {"model_dir": str(work / "themes-models"), "cache_dir": str(run_dir / "embeddings")}
    if args.classifier:
        themes["classifier"] = args.classifier
    for item in args.set:
        key, _, value = item.partition("=")
        themes[key] = yaml.safe_load(value)
    config = load_config(data={"lake": str(run_dir / "lake"), "windows": {"unit": "semester"},
                               "sources": [{"kind": "reddit.dumps.v1", "name": "scaled", "paths": [f"{source}/*.zst"]}],
                               "privacy": {"key_file": str(work / "pseudonym.key")}, "themes": themes})
    load_or_train(config.themes)  # trained outside the timing (a nightly run finds its model)
    run_pipeline(config, only=["preprocess"])
    started = time.process_time()
    full = run_pipeline(config, only=["themes"])
    full_cpu = round(time.process_time() - started, 2)
    for path in held.glob("*.zst"):
        shutil.copy(path, source / path.name)
    run_pipeline(config, only=["preprocess"])
    lake = run_dir / "lake"
    saved = run_dir / "saved-state"
    for name in STATE:
        if (lake / name).exists():
            shutil.copytree(lake / name, saved / name)
    seconds, cpu, summary = [], [], {}
    for _ in range(args.repeat):
        for name in STATE:
            shutil.rmtree(lake / name, ignore_errors=True)
            if (saved / name).exists():
                shutil.copytree(saved / name, lake / name)
        started = time.process_time()
        nightly = run_pipeline(config, only=["themes"])
        cpu.append(round(time.process_time() - started, 2))
        seconds.append(nightly.timings["themes"])
        summary = nightly.outputs["themes"]
    result = {"label": args.label, "edumine": str(Path(edumine.__file__).parent), "n": args.n, "share": args.share,
              "classifier": config.themes.classifier, "full_themes_s": full.timings["themes"], "full_run_cpu_s": full_cpu,
              "full_docs": full.outputs["themes"]["docs"], "nightly_themes_s": seconds,
              "nightly_median_s": statistics.median(seconds),
              "nightly_run_cpu_s": cpu, "loadavg_start": load_start,
              "ratio": round(statistics.median(seconds) / full.timings["themes"], 4),
              "nightly_scored_now": summary.get("scored_now"), "nightly_prevalence": summary.get("prevalence"),
              "loadavg_end": list(os.getloadavg())}
    (work / f"{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
