"""Stage ``store`` (order 80): rebuild ``<lake>/summary.duckdb`` (and the optional PostgreSQL copy)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr

from edumine import registry
from edumine.config import StrictModel
from edumine.stages import STORED, Stage


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


def run_store(ctx: Any) -> dict[str, Any]:
    from edumine.store import build_store, copy_to_postgres, postgres_url

    summary = build_store(ctx.lake.root, run_id=ctx.run_id)
    url = postgres_url(ctx.config.store)
    if url:
        summary["postgres"] = {"schema": ctx.config.store.postgres_schema,
                               "tables": copy_to_postgres(summary["path"], url, ctx.config.store.postgres_schema)}
    return summary


STAGE = registry.stages.register("store")(
    Stage("store", run=run_store, optional_inputs=STORED, outputs=("summary.duckdb",),
          section="store", description="summary store (DuckDB, optional PostgreSQL)"))
