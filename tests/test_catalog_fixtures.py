"""Store and report fixtures come from the catalog's schemas: a fixture with a column no stage writes is refused;
the store and the report read exactly the catalog's columns; `edumine catalog` on a lake built from fixtures.
None of these needs ../shared: the lakes are built here from the catalog."""

from __future__ import annotations

import ast
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from conftest import ROOT
from fixtures_catalog import FixtureColumnError, build, make_table, write_table


def test_a_fixture_with_a_column_the_catalog_lacks_is_refused() -> None:
    """Regression: the report tests wrote `related_topic_ids` while the lineage stage writes `related_topics`."""
    with pytest.raises(FixtureColumnError, match=r"\['related_topic_ids'\] that the catalog does not declare"):
        make_table("topic_events", [{"topic_id": 1, "event": "grew", "related_topic_ids": [2]}])
    with pytest.raises(FixtureColumnError, match="'topic_id' does not fit int64"):
        make_table("topic_events", [{"topic_id": "one"}])
    table = make_table("topic_events", [{"topic_id": 1, "event": "grew", "related_topics": [2]}])
    from edumine.tables import TOPIC_EVENTS

    assert table.schema == TOPIC_EVENTS  # every declared column, in order, with its type
    assert table.column("scope").to_pylist() == [None]  # left out: null


def test_declared_defaults_are_filled_and_required_columns_must_be_given() -> None:
    schema = pa.schema([pa.field("uid", pa.string(), nullable=False),
                        pa.field("kind", pa.string(), metadata={"default": json.dumps("post")}),
                        pa.field("score", pa.int64())])
    table = build("example", schema, [{"uid": "a"}, {"uid": "b", "score": 3}])
    assert table.to_pylist() == [{"uid": "a", "kind": "post", "score": None}, {"uid": "b", "kind": "post", "score": 3}]
    with pytest.raises(FixtureColumnError, match="lacks column 'uid', which is not nullable"):
        build("example", schema, [{"score": 1}])
    with pytest.raises(FixtureColumnError, match="lacks column 'uid'"):
        make_table("docs", [{"kind": "post"}])


def test_partitioned_fixtures_go_where_the_stage_writes_them(tmp_path: Path) -> None:
    from edumine.lake import Lake

    write_table(tmp_path, "docs", [{"uid": "reddit:post:1", "platform": "reddit", "community": "2017",
                                    "month": "2017-07", "usable": True},
                                   {"uid": "reddit:post:2", "platform": "reddit", "community": "teaching",
                                    "month": "2017-08", "usable": False}])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet")) == [
        "docs/platform=reddit/community=2017/month=2017-07/part-0.parquet",
        "docs/platform=reddit/community=teaching/month=2017-08/part-0.parquet"]
    assert Lake(tmp_path).read("docs", columns=["uid", "usable"]).num_rows == 2


# -- the store and the report read the catalog's columns ----------------------------------------------------
def _calls(path: Path, method: str) -> list[tuple[str, list[str]]]:
    """(table, columns) of every ``<x>.<method>("table", [columns...])`` with literal arguments in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            columns = []
            if len(node.args) > 1 and isinstance(node.args[1], (ast.List, ast.Tuple)):
                columns = [e.value for e in node.args[1].elts if isinstance(e, ast.Constant)]
            found.append((node.args[0].value, columns))
    return found


def test_every_table_the_store_and_report_read_is_declared_with_the_columns_they_use() -> None:
    from edumine.catalog import entry
    from edumine.report.data import PREVALENCE
    from edumine.report.lineage import EVENT_COLUMNS
    from edumine.store import LAKE_VIEWS, SUMMARY_TABLES, catalog_schema

    for name in SUMMARY_TABLES + LAKE_VIEWS:
        assert entry(name).resolved_schema() is not None, f"the store reads {name}, which declares no schema"
        assert catalog_schema(name).names  # what the store selects
    uses = [call for path in sorted((ROOT / "edumine" / "report").glob("*.py"))
            for method in ("require", "table") for call in _calls(path, method)]
    assert {name for name, _ in uses} >= {"topics", "topic_events", "topic_lineage", "theme_prevalence", "posts",
                                          "quarantine", "community_activity", "doc_topics", "doc_themes"}
    uses += [("topic_events", list(EVENT_COLUMNS))]
    uses += [(table, list(columns)) for table, columns in PREVALENCE.items()]
    for name, columns in uses:
        declared = catalog_schema(name).names
        assert set(columns) <= set(declared), f"the report reads {sorted(set(columns) - set(declared))} of {name}"


def _fixture_lake(root: Path) -> Path:
    write_table(root, "community_activity", [
        {"window_start": date(2018, 1, 1), "window_label": "2018H1", "platform": "reddit", "community": "teaching",
         "contributions": 10, "posts": 4, "comments": 6, "unknown_author_contributions": 0, "contributors": 5}])
    write_table(root, "topics", {"topic_id": [0, 1], "label": ["a_b", "c_d"], "top_terms": [["a", "b"], ["c", "d"]],
                                 "size": [3, 2]})
    write_table(root, "topic_events", {"window_label": ["2018H1"], "window_start": [date(2018, 1, 1)],
                                       "community": ["all"], "scope": ["all"], "topic_id": [0], "event": ["emerged"],
                                       "related_topics": [[]]})
    write_table(root, "doc_topics", {"uid": ["reddit:post:1", "reddit:post:2"], "topic_id": [0, 1]})
    return root


def test_the_store_holds_exactly_the_catalogs_columns(tmp_path: Path) -> None:
    """A column the catalog does not declare stays out; a declared one an older edumine did not write is NULL."""
    from edumine.lake import write_parquet_atomic
    from edumine.store import build_store, catalog_schema

    lake = _fixture_lake(tmp_path / "lake")
    old = make_table("topics", {"topic_id": [2], "label": ["e_f"]}).drop_columns(["label_coverage"])
    write_parquet_atomic(old.append_column("guessed_name", pa.array(["x"])), lake / "topics" / "part-1.parquet")
    summary = build_store(lake)
    assert summary["tables"] == {"runs": 0, "community_activity": 1, "topics": 3, "topic_events": 1}
    assert summary["views"] == ["doc_topics"]
    con = duckdb.connect(str(lake / "summary.duckdb"), read_only=True)
    try:
        for name in ("community_activity", "topics", "topic_events", "doc_topics"):
            columns = [row[0] for row in con.execute(f'DESCRIBE "{name}"').fetchall()]
            assert columns == catalog_schema(name).names, name
        assert con.execute("SELECT count(label_coverage) FROM topics").fetchone()[0] == 0
        types = dict((row[0], row[1]) for row in con.execute('DESCRIBE "topics"').fetchall())
        assert types["label_coverage"] == "DOUBLE" and types["top_terms"] == "VARCHAR[]"
    finally:
        con.close()


def test_the_report_names_a_column_an_older_edumine_did_not_write(tmp_path: Path) -> None:
    from edumine.lake import write_parquet_atomic
    from edumine.report.build import build_report
    from edumine.report.data import Data, ReportDataError

    lake = _fixture_lake(tmp_path / "lake")
    events = make_table("topic_events", {"window_label": ["2018H1"], "topic_id": [0], "event": ["emerged"]})
    write_parquet_atomic(events.drop_columns(["scope"]), lake / "topic_events" / "part-0.parquet")
    data = Data(lake)
    try:
        with pytest.raises(ReportDataError, match=r"lacks the column\(s\) \['scope'\].*edumine migrate"):
            data.table("topic_events")
        with pytest.raises(ReportDataError, match="does not declare"):
            data.require("topics", ["terms"])
    finally:
        data.close()
    report = build_report(lake, out=tmp_path / "report.html")
    assert report["sections"]["lineage"] == "error" and report["sections"]["activity"] == "ok"


# -- edumine catalog ----------------------------------------------------------------------------------------
def test_catalog_command_on_a_fixture_lake(tmp_path: Path) -> None:
    from edumine.catalog import ENTRIES
    from edumine.cli import app

    lake = _fixture_lake(tmp_path / "lake")
    runner = CliRunner()
    result = runner.invoke(app, ["catalog", "--lake", str(lake), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(rows) == [e.name for e in ENTRIES]
    assert {n: r["rows"] for n, r in rows.items() if r["present"]} == {
        "community_activity": 1, "topics": 2, "topic_events": 1, "doc_topics": 2}
    assert rows["topics"] == {**rows["topics"], "layer": "model_output", "owner": "topics", "kind": "table",
                              "files": 1}
    assert rows["posts"]["present"] is False and rows["posts"]["rows"] is None
    table = runner.invoke(app, ["catalog", "--lake", str(lake)])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)  # one line per entry in an 80-column terminal
    assert any(line.split() == ["topics", "model_output", "topics", "1", "2", *line.split()[-2:]]
               for line in lines)
    assert any(line.split() == ["topic_outlier_pool", "model_output", "topics", "absent"] for line in lines)
    assert f"4 of {sum(e.kind == 'table' for e in ENTRIES)} tables present (6 rows)" in table.output
