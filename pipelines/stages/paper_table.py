"""Stage ``paper_table`` (order 65, off by default): participation metrics laid out as Staudt Willet & Carpenter
(2021) did (metrics x community x window) -> ``<lake>/paper_table/``, shown in the report
(``edumine/report/paper.py``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import Field, field_validator

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import Output, RunInfo, Stage, StageResult


@registry.config_sections.register("paper_table")
class PaperTableConfig(StrictModel):
    """The replication table: which metrics, communities and windows, in the order they are shown."""

    enabled: bool = False
    title: str | None = Field(None, description="the report section's title")
    communities: list[str] | None = Field(None, description="column groups, in this order (default: all)")
    metrics: list[str] | None = Field(None, description="rows, in this order (default: the paper's measures)")
    since: date | None = Field(None, description="first window shown (the window containing this day)")
    until: date | None = Field(None, description="last window shown (the window containing this day)")

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        from edumine.models.participation import COLUMNS

        if value is not None:
            unknown = [m for m in value if m not in COLUMNS[4:]]
            if unknown:
                raise ValueError(f"unknown metrics {unknown}; choose from community_activity's: {COLUMNS[4:]}")
        return value

    @field_validator("communities")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.strip().removeprefix("r/") for v in value]


def run_paper_table(inputs: Any, settings: PaperTableConfig, run: RunInfo) -> StageResult:
    import pyarrow as pa

    from edumine.report.paper import PAPER_METRICS, TABLE, paper_long
    from edumine.windows import window_start

    activity = inputs["community_activity"].read().to_pandas()
    unit = run.windows_unit
    bounds = [None if day is None else window_start(day, unit) for day in (settings.since, settings.until)]
    long = paper_long(activity, metrics=settings.metrics or PAPER_METRICS, communities=settings.communities,
                      since=bounds[0], until=bounds[1])
    table = pa.Table.from_pandas(long, preserve_index=False)
    index = table.schema.get_field_index("window_start")
    table = table.set_column(index, "window_start", table["window_start"].cast(pa.timestamp("s")).cast(pa.date32()))
    return StageResult(outputs={TABLE: Output(table)},
                       summary={"table": TABLE, "rows": len(long), "metrics": int(long["metric"].nunique()),
                                "columns": int(long[["community", "window_start"]].drop_duplicates().shape[0])})


STAGE = registry.stages.register("paper_table")(
    Stage("paper_table", run=run_paper_table, inputs=("community_activity",), outputs=("paper_table",),
          section="paper_table",
          description="participation metrics in the shape of Staudt Willet & Carpenter (2021)"))
