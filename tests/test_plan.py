"""Stages declare inputs and outputs; the plan orders them from that and refuses inputs nobody produces."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_config
from edumine.catalog import UnknownTableError
from edumine.stages import PlanError, Stage, pipeline_stages, plan


def _stage(name: str, inputs: tuple = (), outputs: tuple = (), optional: tuple = ()) -> Stage:
    return Stage(name, run=lambda ctx: {}, inputs=inputs, outputs=outputs, optional_inputs=optional)


def test_producers_run_first_whatever_the_names() -> None:
    stages = [_stage("a_report", optional=("summary.duckdb", "topics")), _stage("b_store", ("topics",),
              ("summary.duckdb",)), _stage("c_topics", ("docs",), ("topics",)), _stage("d_prep", ("posts",), ("docs",))]
    assert [s.name for s in plan(stages)] == ["d_prep", "c_topics", "b_store", "a_report"]


def test_an_input_without_producer_is_refused_unless_the_lake_has_it() -> None:
    stages = [_stage("topics", ("docs",), ("topics",))]
    with pytest.raises(PlanError, match="reads 'docs', which no enabled stage writes .* owner is 'preprocess'"):
        plan(stages)
    assert [s.name for s in plan(stages, available=["docs"])] == ["topics"]
    optional = [_stage("report", optional=("topics",))]  # optional inputs need no producer
    assert [s.name for s in plan(optional)] == ["report"]


def test_cycles_and_undeclared_tables_are_refused() -> None:
    with pytest.raises(PlanError, match="cycle"):
        plan([_stage("x", ("docs",), ("topics",)), _stage("y", ("topics",), ("docs",))])
    with pytest.raises(UnknownTableError, match="did you mean 'doc_topics'"):
        _stage("z", ("doc_topic",))


def test_the_default_pipeline_plan(tmp_path: Path) -> None:
    order = [s.name for s in pipeline_stages(make_config(tmp_path / "lake"))]
    assert order.index("preprocess") < order.index("topics") < order.index("lineage") < order.index("store")
    assert order.index("preprocess") < order.index("themes") and order[-2:] == ["store", "report"]
    no_preprocess = make_config(tmp_path / "lake", preprocess={"enabled": False})
    with pytest.raises(PlanError, match="'topics' reads 'docs'"):
        pipeline_stages(no_preprocess)
