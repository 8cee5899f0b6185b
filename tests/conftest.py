"""Shared fixtures: the real corpora in ../shared, an isolated key and Prefect home, small configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPORA = SHARED / "corpora"
FIXTURES = SHARED / "fixtures"
# Trained theme models and the ONNX export shared by the tests' lakes (gitignored, kept between sessions): tests
# that train the same model train it once. Not data/models: `make demo` migrates that folder into its lake.
SHARED_MODELS = ROOT / "data" / "test-models"
TEST_KEY = "edumine-test-key-not-secret"


SHARED_MISSING = f"needs ../shared (corpora, labels, codebook), which is not at {SHARED}; CI has it"
_SHARED_NAMES = {"CORPORA", "SHARED", "FIXTURES", "default_lake", "default_sources"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ../shared, tests that read it skip with one reason; the others run on the project's fixtures."""
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=SHARED_MISSING)
    for item in items:
        if _needs_shared(item):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Without ../shared, a test that reached for it anyway (through a helper the static check cannot see)
    is reported as skipped for that reason, not as a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None and not SHARED.is_dir() and str(SHARED) in str(call.excinfo.value):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {SHARED_MISSING}")


def _needs_shared(item: pytest.Item) -> bool:
    import ast
    import inspect

    module = getattr(item, "module", None)
    if module is None:
        return True
    names = set(_SHARED_NAMES)
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:  # module constants built from the shared folder count as shared too
        if isinstance(node, ast.Assign) and _mentions(node.value, names):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    functions = [getattr(item, "function", None)]
    for fixture_defs in getattr(item, "_fixtureinfo").name2fixturedefs.values():
        functions += [definition.func for definition in fixture_defs]
    if names & set(getattr(item, "fixturenames", ())):
        return True
    seen: set[object] = set()
    while functions:  # the test, its fixtures, and the test helpers (tests/*.py) they call
        function = functions.pop()
        if function is None or function in seen:
            continue
        seen.add(function)
        try:
            source = ast.parse(inspect.getsource(function).strip())
        except (OSError, TypeError, SyntaxError):
            continue
        if _mentions(source, names) or _default_sources_call(source):
            return True
        helpers = getattr(function, "__globals__", {})
        for node in ast.walk(source):
            called = helpers.get(node.id) if isinstance(node, ast.Name) else None
            if inspect.isfunction(called) and Path(inspect.getfile(called)).is_relative_to(ROOT / "tests"):
                if _mentions(ast.parse(inspect.getsource(inspect.getmodule(called))), _SHARED_NAMES - {"default_lake"}):
                    functions.append(called)
    return False


def _mentions(node: object, names: set[str]) -> bool:
    import ast

    return any(isinstance(sub, ast.Name) and sub.id in names for sub in ast.walk(node))  # type: ignore[arg-type]


def _default_sources_call(node: object) -> bool:
    """``make_config(lake)`` with no sources reads the default corpora in ../shared."""
    import ast

    return any(isinstance(sub, ast.Call) and getattr(sub.func, "id", "") == "make_config" and len(sub.args) < 2
               and not any(k.arg == "sources" for k in sub.keywords) for sub in ast.walk(node))  # type: ignore[arg-type]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Prefect stops its temporary servers at interpreter exit and logs that to the stream pytest has already
    # closed; the "Logging error" it would print then buries pytest's summary line.
    import logging

    logging.raiseExceptions = False


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("EDUMINE_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path_factory.getbasetemp() / "prefect-home"))
    # The ONNX export of MiniLM is built once per checkout and shared by every test's lake (a run's default is
    # its lake's models/onnx, which would export it again for each test lake).
    monkeypatch.setenv("EDUMINE_ONNX_DIR", str(SHARED_MODELS / "onnx"))
    monkeypatch.setenv("EDUMINE_STATIC_DIR", str(SHARED_MODELS / "static"))  # likewise the static MiniLM


def default_sources(root: Path = CORPORA) -> list[dict]:
    """The sources of configs/default.yaml, pointed at ``root`` (the shared corpora)."""
    import yaml

    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    for source in data["sources"]:
        source["paths"] = [p.replace("../shared/corpora", str(root)) for p in source["paths"]]
    return data["sources"]


# The topic stage's default vectors (TF-IDF+SVD next to the theme stage's MiniLM) cost MiniLM encoding wherever a
# test runs topics without the theme stage; tests of other behaviour pin TF-IDF+SVD to keep the suite within its
# budget. tests/test_topic_vectors_default.py (and the default case of the spam regression test) run the
# default choice itself (``default_vectors=True``).
PINNED_VECTORS = {"backend": "embeddings.tfidf_svd.v1"}


def make_config(lake: Path, sources: list[dict] | None = None, *, default_vectors: bool = False,
                **sections: object):
    """A validated config with the default corpora (or ``sources``) and a lake under ``lake``; topic vectors
    pinned to TF-IDF+SVD unless ``topics.embeddings`` is given or ``default_vectors``."""
    from edumine.config import load_config

    topics = dict(sections.pop("topics", None) or {})
    if not default_vectors and "embeddings" not in topics:
        topics["embeddings"] = dict(PINNED_VECTORS)
    data = {"lake": str(lake), "sources": sources if sources is not None else default_sources(),
            "privacy": {"key_file": str(lake.parent / "pseudonym.key")}, "topics": topics, **sections}
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
