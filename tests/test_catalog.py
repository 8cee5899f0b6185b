"""The catalog: every lake table declared once; Lake.read / Lake.write go through it; `edumine catalog`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from edumine.catalog import CATALOG, LAYERS, UnknownTableError
from edumine.cli import app
from edumine.lake import Lake
from fixtures_catalog import make_table


def test_entries_are_complete() -> None:
    assert {"posts", "quarantine", "docs", "topics", "doc_topics", "topic_events", "doc_themes",
            "theme_prevalence", "community_activity", "summary.duckdb", "report.html"} <= set(CATALOG)
    assert all(entry.layer in LAYERS and entry.owner and entry.description for entry in CATALOG.values())


def test_write_and_read_go_through_the_catalog(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    with pytest.raises(UnknownTableError, match="did you mean 'topic_events'"):
        lake.write("topic_event", pa.table({"a": [1]}))
    with pytest.raises(FileNotFoundError, match="the lineage stage writes it"):
        lake.read("topic_events")
    assert lake.read("topic_events", missing_ok=True) is None
    lake.write("topic_events", make_table("topic_events", {"topic_id": [1, 2], "event": ["emerged", "grew"]}))
    assert lake.read("topic_events", columns=["event"]).column("event").to_pylist() == ["emerged", "grew"]
    with pytest.raises(ValueError, match="lacks the catalog's columns"):  # quarantine has a declared schema
        lake.write("quarantine", pa.table({"reason": ["x"]}))


def test_catalog_command_counts_rows(default_lake: Path) -> None:
    result = CliRunner().invoke(app, ["catalog", "--lake", str(default_lake), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["posts"]["layer"] == "raw" and rows["posts"]["owner"] == "collect"
    assert rows["posts"]["rows"] == Lake(default_lake).count_posts() > 10_000
    assert rows["runs"]["present"] and not rows["report.html"]["present"]
