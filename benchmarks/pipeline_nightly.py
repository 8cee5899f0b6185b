"""The nightly mode of benchmarks/pipeline_scale.py: the held-back records, its table, and nightly runs side by
side without their full run (the state a full run left, kept and restored).

``benchmarks/pipeline_scale.py --nightly SHARE --snapshot DIR`` keeps, right after the full run (outside its
timing), the work folder as the run left it (dumps, lake, embedding cache; not Prefect's database, which the
running server owns), the held-back records as dump files (``new-dumps``) and the full run's figures
(``full.json``). ``pipeline_scale.py --from-snapshot DIR`` restores the work folder to the same path (the lake,
its file ledger and the config hold absolute paths), adds the new dump files and times only the nightly run,
as one process under ``/usr/bin/time -v``, reporting its ratio to the recorded full run. Run from two
checkouts alternately to put old and new code side by side on the same lake.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline_scale import (ROOT, commit_label, running_prefect_server, shown_command, stage_rows, stage_sections,
                            timed_run, write_dumps)


def split_newest(records: list[dict[str, Any]], share: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The records without their newest ``share`` (by created_at, then uid) and that newest share: what a
    nightly collection brings is the newest contributions."""
    ordered = sorted(records, key=lambda r: (r["created_at"], r["uid"]))
    cut = len(ordered) - max(1, round(share * len(ordered)))
    return ordered[:cut], ordered[cut:]


def nightly_markdown(result: dict[str, Any]) -> str:
    n = result["n"]
    full, nightly = result["full"], result["nightly"]
    lines = [f"<!-- pipeline-nightly {n} start (written by benchmarks/pipeline_scale.py --nightly) -->",
             f"### Nightly: {result['records_full']:,} contributions, then +{result['records_new']:,} "
             f"({100 * result['share']:g} %), {result['date']}", "",
             "| stage | full run (s) | nightly run (s) | nightly / full |", "|---|---:|---:|---:|"]
    nightly_seconds = {row["stage"]: row["seconds"] for row in nightly["stages"]}
    for row in full["stages"]:
        other = nightly_seconds.get(row["stage"])
        ratio = f"{other / row['seconds']:.3f}" if other is not None and row["seconds"] else ""
        lines.append(f"| {row['stage']} | {row['seconds']:,.2f} | "
                     f"{'' if other is None else f'{other:,.2f}'} | {ratio} |")
    lines += ["",
              f"- whole process (`/usr/bin/time -v`): full **{full['process']['wall_seconds']:,.1f} s** "
              f"({full['process']['peak_rss_mb']:,} MiB peak), nightly **{nightly['process']['wall_seconds']:,.1f} s** "
              f"({nightly['process']['peak_rss_mb']:,} MiB peak): **nightly / full = {result['ratio_wall']:.3f}**; "
              f"sum of stages: {result['ratio_stages']:.3f}",
              f"- topic update: {nightly['outputs'].get('topic_update', {}).get('mode')} "
              f"({nightly['outputs'].get('topic_update', {}).get('reason')})",
              f"- load average (1, 5, 15 min): full run before {full['load_before']}, after {full['load_after']}; "
              f"nightly before {nightly['load_before']}, after {nightly['load_after']}; {os.cpu_count()} CPUs; "
              f"commit `{result['commit']}`",
              f"- command: `{result['command']}`",
              f"<!-- pipeline-nightly {n} end -->"]
    return "\n".join(lines) + "\n"


def run_figures(timed: dict[str, Any], n_records: int) -> dict[str, Any]:
    manifest = timed["manifest"]
    return {"process": timed["process"], "load_before": timed["load_before"], "load_after": timed["load_after"],
            "stages": stage_rows(manifest, n_records),
            "stage_seconds_total": round(sum(manifest["timings"].values()), 2), "outputs": manifest["outputs"]}


def save_snapshot(snapshot: Path, work: Path, full: dict[str, Any], held_back: list[dict[str, Any]],
                  about: dict[str, Any]) -> None:
    """The work folder as the full run left it, the held-back records as dump files and the full run's
    figures, for ``--from-snapshot`` (outside the timing)."""
    shutil.rmtree(snapshot, ignore_errors=True)
    snapshot.mkdir(parents=True)
    # Prefect's database belongs to the running server (a copy could be torn); a restored run makes its own.
    shutil.copytree(work, snapshot / "work", symlinks=True, ignore=shutil.ignore_patterns("prefect"))
    new_counts = write_dumps(held_back, snapshot / "new-dumps", stem="nightly")
    (snapshot / "full.json").write_text(json.dumps({**about, "work": str(work), "new_counts": new_counts,
                                                    "full": full}, indent=2, default=str) + "\n", encoding="utf-8")


def nightly_from_snapshot(args: argparse.Namespace) -> None:
    """Restore a snapshot into its work folder and time only the nightly run (module docstring)."""
    snapshot = args.from_snapshot.resolve()
    saved = json.loads((snapshot / "full.json").read_text(encoding="utf-8"))
    sections = {name: section for name, section in stage_sections().items() if name not in saved["disabled"]}
    work = Path(saved["work"])
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(snapshot / "work", work, symlinks=True)
    for dump in (snapshot / "new-dumps").iterdir():
        shutil.copy2(dump, work / "dumps" / dump.name)
    run_dir = work / "run"
    env = dict(os.environ, EDUMINE_PSEUDONYM_KEY=os.environ.get("EDUMINE_PSEUDONYM_KEY", "edumine-benchmark-key"),
               PREFECT_HOME=str(run_dir / "prefect"))
    command = [str(ROOT / ".venv" / "bin" / "edumine"), "run", "--config", str(run_dir / "config.yaml"),
               *[part for item in saved["overrides"] for part in ("--set", item)]]
    if args.py_spy is not None:  # every thread and child process, native frames left out
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).is_file():
            raise SystemExit("--py-spy: py-spy is not installed here (pip install py-spy, or put its folder on PATH)")
        command = [spy, "record", "--subprocesses", "--rate", "50",
                   "--format", "raw", "--output", str(args.py_spy.resolve()), "--", *command]
    if saved["prefect_server"]:
        env["PREFECT_API_URL"] = running_prefect_server(env)
    timed = timed_run(command, env, run_dir / "nightly.log", run_dir / "lake", sections)
    new_records = saved["new_counts"]["post"] + saved["new_counts"]["comment"]
    nightly, full = run_figures(timed, new_records), saved["full"]
    result = {"n": saved["n"], "share": saved["share"], "snapshot": str(snapshot),
              "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit_label(),
              "full_commit": saved["commit"], "command": shown_command(),
              "measured_command": f"/usr/bin/time -v {shlex.join(command)}",
              "records_full": saved["records_full"], "records_new": new_records,
              "ratio_wall": nightly["process"]["wall_seconds"] / full["process"]["wall_seconds"],
              "ratio_stages": nightly["stage_seconds_total"] / full["stage_seconds_total"],
              "full": full, "nightly": nightly}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (args.out / f"pipeline-nightly-{saved['n']}-snapshot-{stamp}.json").write_text(
        json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    sys.stdout.write(nightly_markdown(result))
