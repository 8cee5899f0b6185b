"""Every repository path the README, CONTRIBUTING, docs/ and benchmarks/ pages name (in backticks or as a relative
link) exists, so the pages cannot drift from the layout; and the pages keep reference and results apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md"),
                *(ROOT / "benchmarks").rglob("*.md")])
TOP = ("edumine/", "miners/", "models/", "pipelines/", "configs/", "tests/", "benchmarks/", "scripts/", "docs/")
ROOT_FILES = ("Makefile", "prefect.yaml", "pyproject.toml", "README.md", "CONTRIBUTING.md")
GENERATED = ("benchmarks/out/",)  # written by the benchmarks, not in the repository
BACKTICKED = re.compile(r"`([^`\s]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def repo_paths(text: str) -> set[str]:
    """Backticked words that name a file or folder of the repository (line numbers, test ids and object names
    after the path are dropped; placeholders and globs are not paths)."""
    found = set()
    for word in BACKTICKED.findall(text):
        path = re.split(r"::|:(?=[A-Za-z_\d])|#", word)[0].rstrip(".,;")
        if any(ch in path for ch in "<>*{}$[]") or path.startswith(GENERATED):
            continue
        if path.startswith(TOP) or path in ROOT_FILES:
            found.add(path)
    return found


def test_the_path_finder_finds_paths_and_skips_what_is_not_one() -> None:
    text = ("`edumine/catalog.py` `tests/test_lineage.py::test_x` `models/text/clean.py:clean_text` `docs/` "
            "`benchmarks/out/x.json` `<lake>/posts/` `data/lake` `configs/*.yaml` `window_label` `Makefile`")
    assert repo_paths(text) == {"edumine/catalog.py", "tests/test_lineage.py", "models/text/clean.py", "docs/",
                                "Makefile"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_page_names_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = sorted(p for p in repo_paths(text) if not (ROOT / p).exists())
    for link in LINK.findall(text):
        target = link.split("#")[0]
        if not target or "://" in target or target.startswith("mailto:"):
            continue
        if not (page.parent / target).exists():
            missing.append(f"link {link}")
    assert missing == [], f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_reference_pages_keep_no_run_logs() -> None:
    """Dated measurement logs live beside the benchmarks (benchmarks/results/), not in docs/."""
    dated = re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d UTC\b|^#+ .*\bload \d", re.M)
    for page in (ROOT / "docs").glob("*.md"):
        hits = dated.findall(page.read_text(encoding="utf-8"))
        assert hits == [], f"{page.name} holds a dated run log {hits[:3]}: move it to benchmarks/results/"
