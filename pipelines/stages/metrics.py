"""Stage ``metrics`` (order 60): participation metrics per window and community -> ``<lake>/community_activity/``."""

from __future__ import annotations

from typing import Any

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import Output, RunInfo, Stage, StageResult

TABLE = "community_activity"


@registry.config_sections.register("metrics")
class MetricsConfig(StrictModel):
    """Participation metrics (contributors, response rate, reply network, ...) per window and community."""

    enabled: bool = True


def activity_table(frame: Any) -> Any:
    """The metrics frame as an Arrow table with ``window_start`` as a DATE."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    index = table.schema.get_field_index("window_start")
    return table.set_column(index, "window_start", table["window_start"].cast(pa.timestamp("s")).cast(pa.date32()))


def run_metrics(inputs: Any, params: MetricsConfig, run: RunInfo) -> StageResult:
    from edumine.models.participation import RECORD_COLUMNS, participation_metrics, records_frame

    unit = run.windows_unit
    frame = participation_metrics(records_frame(inputs["posts"].read(columns=RECORD_COLUMNS)), unit)
    return StageResult(
        outputs={TABLE: Output(activity_table(frame))},
        summary={"table": TABLE, "rows": len(frame), "unit": unit,
                 "communities": int(frame[["platform", "community"]].drop_duplicates().shape[0]),
                 "contributions": int(frame["contributions"].sum())})


STAGE = registry.stages.register("metrics")(
    Stage("metrics", run=run_metrics, inputs=("posts",), outputs=("community_activity",),
          section="metrics",
          description="participation metrics per window and community"))
