"""Stage ``metrics`` (order 60): participation metrics per window and community -> ``<lake>/community_activity/``."""

from __future__ import annotations

from typing import Any

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import Output, RunInfo, Stage, StageResult

TABLE = "community_activity"
STATE = "activity_runs"


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
    """Recompute the windows that records collected since the last run change, keep the other rows
    (``incremental_activity``); ``activity_runs`` records which collection runs the table covers."""
    import pyarrow as pa

    from edumine.models.participation import RECORD_COLUMNS, incremental_activity, records_frame

    unit = run.windows_unit
    records = records_frame(inputs["posts"].read(columns=RECORD_COLUMNS + ["ingest_run"]))
    state = inputs[STATE].read()
    seen = None if state is None or set(state["unit"].to_pylist()) != {unit} else \
        set(state["ingest_run"].to_pylist())
    old = inputs[TABLE].read() if seen is not None else None
    frame, counts = incremental_activity(records, seen, None if old is None else old.to_pandas(), unit)
    runs = sorted(set(records["ingest_run"].fillna("")))
    return StageResult(
        outputs={TABLE: Output(activity_table(frame)),
                 STATE: Output(pa.table({"ingest_run": pa.array(runs, pa.string()),
                                         "unit": pa.array([unit] * len(runs), pa.string())}))},
        summary={"table": TABLE, "rows": len(frame), "unit": unit, **counts,
                 "communities": int(frame[["platform", "community"]].drop_duplicates().shape[0]),
                 "contributions": int(frame["contributions"].sum())})


STAGE = registry.stages.register("metrics")(
    Stage("metrics", run=run_metrics, inputs=("posts",), outputs=("community_activity", "activity_runs"),
          section="metrics",
          description="participation metrics per window and community"))
