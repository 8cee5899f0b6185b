"""Stage ``report`` (order 90): ``<lake>/report.html`` and, inside a Prefect run, the run-summary artifacts."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import REPORTED, Stage


@registry.config_sections.register("report")
class ReportConfig(StrictModel):
    """The self-contained HTML report."""

    enabled: bool = True
    max_series: int = Field(10, ge=1, le=50, description="topics (and themes) drawn in the prevalence charts")


def run_report(ctx: Any) -> dict[str, Any]:
    from edumine.report import build_report

    manifest = None
    if ctx.manifest_path.is_file():  # this run's manifest, as written after the stages before this one
        manifest = json.loads(ctx.manifest_path.read_text(encoding="utf-8"))
    return build_report(ctx.lake.root, manifest=manifest, max_series=ctx.config.report.max_series)


STAGE = registry.stages.register("report")(
    Stage("report", run=run_report, optional_inputs=REPORTED, outputs=("report.html",),
          section="report", description="self-contained HTML report"))
