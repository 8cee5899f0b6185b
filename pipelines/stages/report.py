"""Stage ``report`` (order 90): ``<lake>/report.html`` and, inside a Prefect run, the run-summary artifacts."""

from __future__ import annotations

from typing import Any

from typing import Literal, Optional

from pydantic import Field

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import REPORTED, Artefact, RunInfo, Stage, StageResult


@registry.config_sections.register("report")
class ReportConfig(StrictModel):
    """The self-contained HTML report."""

    enabled: bool = True
    max_series: int = Field(10, ge=1, le=50, description="topics (and themes) drawn in the prevalence charts")
    lineage_topics: int = Field(20, ge=1, le=200, description="most changing topics shown in the lineage timeline")
    min_window_docs: int = Field(30, ge=1, description="docs a window needs in a community for its shares to be "
                                 "drawn; smaller windows are gaps with a note")
    catch_all_coverage: float = Field(0.2, ge=0, le=1, description="topics whose label_coverage is under this are "
                                      "catch-alls, folded into one 'unclear / spam' row")
    lineage_view: Literal["timeline", "sankey"] = Field("timeline", description="timeline (default) or the old "
                                                        "Sankey of every link, kept for comparison")
    reliability_floor: Optional[float] = Field(None, ge=0, le=1, description="theme F1 under which a theme is "
                                               "marked unreliable; null: themes.reliability_floor, else 0.5")


def run_report(inputs: Any, config: ReportConfig, run: RunInfo) -> StageResult:
    """The report reads the store and the lake's tables (``edumine/report/``); the runner moves the page into
    place."""
    from edumine.report.build import ReportSettings, build_report

    manifest = run.manifest()  # this run's manifest, as written after the stages before this one
    settings = ReportSettings(**config.model_dump(exclude={"enabled"}))

    def summary(written: dict[str, Any]) -> dict[str, Any]:
        built = written["report.html"]
        return {**built["result"], "path": str(built["path"])}

    return StageResult(outputs={"report.html": Artefact(
        lambda path: build_report(run.lake_root, manifest=manifest, settings=settings, out=path,
                                  shown_path=inputs["report.html"].path), file=True)},
        summary=summary)


def close_report(config: ReportConfig, run: RunInfo, manifest: dict[str, Any], summary: dict[str, Any]) -> None:
    """The run has closed: the report's header and provenance show its final status."""
    from edumine.report.build import refresh_provenance

    refresh_provenance(run.lake_root, manifest)


STAGE = registry.stages.register("report")(
    Stage("report", run=run_report, optional_inputs=REPORTED, outputs=("report.html",),
          section="report", description="self-contained HTML report", on_close=close_report))
