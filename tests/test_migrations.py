"""Lake migrations: a lake written before the `window` -> `window_label` rename is brought up to date in place."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from edumine.cli import app
from edumine.migrations import migrate_lake


def _old_table(path: Path) -> pa.Table:
    table = pa.table({"window_start": pa.array([None], pa.date32()), "window": ["2018H1"], "community": ["teaching"],
                      "share": [0.25]})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return table


def test_window_column_is_renamed_once_and_data_kept(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    before = _old_table(lake / "topic_prevalence" / "part-0.parquet")
    _old_table(lake / "theme_prevalence" / "part-0.parquet")
    pq.write_table(pa.table({"uid": ["x"], "window": ["kept"]}), _mk(lake / "posts" / "p.parquet"))  # not a window table

    changed = migrate_lake(lake)

    assert sorted(changed) == ["theme_prevalence/part-0.parquet", "topic_prevalence/part-0.parquet"]
    after = pq.read_table(lake / "topic_prevalence" / "part-0.parquet")
    assert after.column_names == ["window_start", "window_label", "community", "share"]
    assert after.column("window_label").to_pylist() == before.column("window").to_pylist()
    assert pq.read_table(lake / "posts" / "p.parquet").column_names == ["uid", "window"]
    assert migrate_lake(lake) == []  # idempotent


def test_migrate_command(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _old_table(lake / "topic_events" / "part-0.parquet")
    result = CliRunner().invoke(app, ["migrate", "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    assert "1 file(s) migrated" in result.output
    assert "window_label" in pq.read_schema(lake / "topic_events" / "part-0.parquet").names
    missing = CliRunner().invoke(app, ["migrate", "--lake", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no lake at" in missing.output


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
