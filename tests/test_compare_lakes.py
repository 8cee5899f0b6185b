"""scripts/compare_lakes.py: the refactor check says identical only when every table's rows are the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import ROOT


def _lake(root: Path, shares: list[float], run_id: str, column: str = "window_label") -> Path:
    folder = root / "topic_prevalence" / "community=teaching"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({column: ["2018H1"] * len(shares), "topic_id": list(range(len(shares))),
                             "share": shares, "run_id": [run_id] * len(shares)}), folder / "part-0.parquet")
    return root


def _compare(old: Path, new: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_lakes.py"), str(old), str(new), *extra],
                          capture_output=True, text=True)


def test_same_rows_in_another_order_and_run_are_identical(tmp_path: Path) -> None:
    result = _compare(_lake(tmp_path / "a", [0.1, 0.2], "run-1"), _lake(tmp_path / "b", [0.1, 0.2], "run-2"))
    assert result.returncode == 0 and "topic_prevalence: identical: 2 rows old, 2 new" in result.stdout


def test_one_changed_value_or_a_renamed_column_is_reported(tmp_path: Path) -> None:
    old = _lake(tmp_path / "a", [0.1, 0.2], "run-1", column="window")
    changed = _compare(old, _lake(tmp_path / "b", [0.1, 0.25], "run-1", column="window"))
    assert changed.returncode == 1 and "1 old rows not in new, 1 new rows not in old" in changed.stdout
    renamed = _lake(tmp_path / "c", [0.1, 0.2], "run-1")
    assert _compare(old, renamed).returncode == 1
    assert _compare(old, renamed, "--rename", "window=window_label").returncode == 0
