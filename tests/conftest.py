"""Shared fixtures: the real corpora in ../shared, an isolated key and Prefect home, small configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPORA = SHARED / "corpora"
FIXTURES = SHARED / "fixtures"
TEST_KEY = "edumine-test-key-not-secret"


def pytest_configure(config: pytest.Config) -> None:
    if not CORPORA.is_dir():
        raise pytest.UsageError(f"the shared corpora are missing: expected {CORPORA} (../shared beside the project)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Prefect stops its temporary servers at interpreter exit and logs that to the stream pytest has already
    # closed; the "Logging error" it would print then buries pytest's summary line.
    import logging

    logging.raiseExceptions = False


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("EDUMINE_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path_factory.getbasetemp() / "prefect-home"))


def default_sources(root: Path = CORPORA) -> list[dict]:
    """The sources of configs/default.yaml, pointed at ``root`` (the shared corpora)."""
    import yaml

    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    for source in data["sources"]:
        source["paths"] = [p.replace("../shared/corpora", str(root)) for p in source["paths"]]
    return data["sources"]


def make_config(lake: Path, sources: list[dict] | None = None, **sections: object):
    """A validated config with the default corpora (or ``sources``) and a lake under ``lake``."""
    from edumine.config import load_config

    data = {"lake": str(lake), "sources": sources if sources is not None else default_sources(),
            "privacy": {"key_file": str(lake.parent / "pseudonym.key")}, **sections}
    return load_config(data=data)


@pytest.fixture
def tmp_lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture(scope="session")
def default_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four shared corpora collected once per session (read-only for tests: copy before writing)."""
    from edumine.pipelines.runner import run_collect

    os.environ.setdefault("EDUMINE_PSEUDONYM_KEY", TEST_KEY)
    lake = tmp_path_factory.mktemp("default") / "lake"
    run_collect(make_config(lake))
    return lake
