"""Stage ``store`` (order 80): rebuild ``<lake>/summary.duckdb`` (and the optional PostgreSQL copy)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import STORED, Artefact, RunInfo, Stage, StageResult


@registry.config_sections.register("store")
class StoreConfig(StrictModel):
    """The summary store: always the DuckDB file in the lake; a PostgreSQL copy when a URL is given."""

    enabled: bool = True
    postgres_url: SecretStr | None = Field(
        None, description="postgresql://user:pass@host/db to copy the store's tables to (masked in manifests)")
    postgres_url_env: str = Field("EDUMINE_STORE_POSTGRES_URL",
                                  description="environment variable read for the URL when postgres_url is unset")
    postgres_schema: str = Field("edumine", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                 description="PostgreSQL schema the tables are replaced in")


def run_store(inputs: Any, params: StoreConfig, run: RunInfo) -> StageResult:
    """The store's tables copy the lake's summary tables and its views read the large ones in place
    (``edumine/store.py`` builds them with DuckDB over the lake); the runner moves the file into place."""
    from edumine.store import build_store

    def summary(written: dict[str, Any]) -> dict[str, Any]:
        from edumine.store import copy_to_postgres, postgres_url

        built = written["summary.duckdb"]
        result = {**built["result"], "path": str(built["path"])}
        url = postgres_url(params)
        if url:
            result["postgres"] = {"schema": params.postgres_schema,
                                  "tables": copy_to_postgres(result["path"], url, params.postgres_schema)}
        return result

    return StageResult(outputs={"summary.duckdb": Artefact(
        lambda path: build_store(run.lake_root, run_id=run.run_id, out=path), file=True)}, summary=summary)


def close_store(params: StoreConfig, run: RunInfo, manifest: dict[str, Any], summary: dict[str, Any]) -> None:
    """The run has closed: its ``runs`` row gets the final status, in the store and in the PostgreSQL copy."""
    from edumine.store import STORE_FILE, copy_to_postgres, postgres_url, refresh_runs

    if not refresh_runs(run.lake_root, manifest):
        return
    url = postgres_url(params)
    if url and summary.get("postgres"):
        copy_to_postgres(run.lake_root / STORE_FILE, url, params.postgres_schema, tables=["runs"])


STAGE = registry.stages.register("store")(
    Stage("store", run=run_store, optional_inputs=STORED, outputs=("summary.duckdb",),
          section="store", description="summary store (DuckDB, optional PostgreSQL)", on_close=close_store))
