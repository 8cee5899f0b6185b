"""The stage contract (edumine/stage_io.py): stage bodies read and write the lake only through the runner.

- No module under pipelines/stages/ opens lake files itself: no pyarrow.parquet / pyarrow.dataset, no DuckDB,
  no ``open(``, ``read_table`` / ``write_table``, no ``Lake`` (or its write helpers), no ``.read_text`` /
  ``.write_text`` / ``.write_bytes`` of paths: an AST check over every stage module.
- The runner is the only writer of a stage's tables: ``Lake.write`` / ``write_partition`` / ``write_artefact``
  are called from ``pipelines/runner.py`` alone, and no model or stage module calls ``write_parquet_atomic``.
- The runner's write modes (overwrite, a stream, append, upsert, partitions) on a real lake.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import ROOT

FORBIDDEN_MODULES = ("pyarrow.parquet", "pyarrow.dataset", "duckdb", "edumine.lake", "shutil", "os")
FORBIDDEN_CALLS = {"open", "read_table", "write_table", "write_dataset", "dataset", "ParquetFile", "read_text",
                   "write_text", "write_bytes", "read_bytes", "write_parquet_atomic", "write_json_atomic",
                   "table_path", "read_posts", "unlink", "rmtree", "rename", "replace", "Lake"}
WRITERS = {"write", "write_partition", "drop_partition", "write_artefact"}


def stage_lake_access(source: str) -> list[str]:
    """What a stage module's source does to reach files itself (empty: nothing)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith(FORBIDDEN_MODULES)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(FORBIDDEN_MODULES) or node.module == "pyarrow" and \
                    any(a.name in ("parquet", "dataset") for a in node.names):
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: {name}(...)")
            if isinstance(func, ast.Attribute) and name in WRITERS and \
                    isinstance(func.value, ast.Attribute) and func.value.attr == "lake":
                found.append(f"line {node.lineno}: lake.{name}(...)")
    return found


def stage_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "pipelines" / "stages").glob("*.py") if p.name != "__init__.py")


def test_no_stage_module_opens_lake_files_itself() -> None:
    problems = {p.name: stage_lake_access(p.read_text(encoding="utf-8")) for p in stage_modules()}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_check_catches_a_stage_that_reads_or_writes_files() -> None:
    planted = '''
import pyarrow.parquet as pq
from edumine.lake import write_parquet_atomic

def run(inputs, params, run):
    table = pq.read_table(run.lake_root / "docs")
    with open(run.lake_root / "x.json", "w") as handle:
        handle.write("{}")
    ctx.lake.write("docs", table)
    write_parquet_atomic(table, run.lake_root / "docs" / "part-0.parquet")
'''
    found = stage_lake_access(planted)
    assert "import pyarrow.parquet" in found and "from edumine.lake import ..." in found
    assert any("read_table" in f for f in found) and any("open(" in f for f in found)
    assert any("lake.write(" in f for f in found) and any("write_parquet_atomic" in f for f in found)


def _calls(path: Path, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_the_runner_is_the_only_writer_of_stage_outputs() -> None:
    """Lake.write and its partition and artefact writes are called by the runner alone; models and stages
    never write a lake table (``write_parquet_atomic``) themselves."""
    lake_writers = {"write_partition", "drop_partition", "write_artefact"}
    callers = [c for folder in ("edumine", "miners", "models", "pipelines")
               for path in sorted((ROOT / folder).rglob("*.py")) if path.name != "lake.py"
               for c in _calls(path, lake_writers)]
    assert callers and {c.split(":")[0] for c in callers} == {"pipelines/runner.py"}
    table_writes = [c for folder in ("models", "pipelines")
                    for path in sorted((ROOT / folder).rglob("*.py"))
                    for c in _calls(path, {"write_parquet_atomic", "write_stream_atomic"})]
    assert table_writes == []
    lake_write = [c for folder in ("models", "pipelines", "miners")
                  for path in sorted((ROOT / folder).rglob("*.py"))
                  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "write" and "lake" in ast.unparse(node.func.value)
                  for c in [f"{path.relative_to(ROOT)}:{node.lineno}"]]
    assert {c.split(":")[0] for c in lake_write} <= {"pipelines/runner.py"}


# -- the runner's writes on a real lake ------------------------------------------------------------------

def test_write_modes(tmp_path: Path) -> None:
    from edumine.lake import Lake

    lake = Lake(tmp_path / "lake")
    lake.write("topic_updates", pa.table({"run_id": ["a", "b"], "n": [1, 2]}))
    lake.write("topic_updates", pa.table({"run_id": ["b", "c"], "n": [20, 3]}), mode="upsert", key=("run_id",))
    assert sorted(lake.read("topic_updates").to_pylist(), key=str) == sorted(
        [{"run_id": "a", "n": 1}, {"run_id": "b", "n": 20}, {"run_id": "c", "n": 3}], key=str)
    lake.write("topic_updates", pa.table({"run_id": ["d"], "n": [4]}), mode="append")
    assert lake.read("topic_updates").num_rows == 4
    batches = (pa.record_batch({"run_id": [str(i)], "n": [i]}) for i in range(3))
    lake.write("topic_updates", batches)  # a stream: written piece by piece, replaces the table
    assert lake.read("topic_updates")["n"].to_pylist() == [0, 1, 2]
    assert [p.name for p in lake.table_path("topic_updates").iterdir()] == ["part-0.parquet"]
    with pytest.raises(ValueError, match="takes a table"):
        lake.write("topic_updates", iter(()), mode="append")


def test_partitions_and_artefacts(tmp_path: Path) -> None:
    from edumine.lake import Lake
    from edumine.stage_io import Inputs
    from edumine.tables import DOCS

    lake = Lake(tmp_path / "lake")
    for partition in ("platform=reddit/community=a/month=2020-01", "platform=reddit/community=b/month=2020-01"):
        lake.write_partition("docs", partition, pa.Table.from_pylist([{"uid": partition[-14:], "usable": True}],
                                                                     schema=DOCS))
    handles = Inputs(lake, ["docs", "models/topics"])
    assert handles["docs"].partitions() == ["platform=reddit/community=a/month=2020-01",
                                            "platform=reddit/community=b/month=2020-01"]
    assert set(handles["docs"].read()["community"].to_pylist()) == {"a", "b"}  # partition columns as strings
    lake.drop_partition("docs", "platform=reddit/community=a/month=2020-01")
    assert handles["docs"].count_rows() == 1 and not (lake.table_path("docs") / "platform=reddit/community=a").exists()
    path, result = lake.write_artefact("models/topics", "r1", lambda folder: (folder.mkdir(), (folder / "m").write_text("x"), 7)[-1])
    assert result == 7 and (path / "m").read_text() == "x" and not list(path.parent.glob(".tmp-*"))
    assert handles["models/topics"].read_json("missing.json") is None
    with pytest.raises(KeyError, match="not among the stage's declared"):
        handles["topics"]
