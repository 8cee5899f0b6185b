"""The layering rule: cli -> pipelines -> stages -> models | miners -> core, nothing upward, no stage imports
another stage. Every import counts, the ones inside functions too (they are how lazy imports are written)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

FOLDERS = {"edumine": "edumine", "miners": "edumine.miners", "models": "edumine.models",
           "pipelines": "edumine.pipelines"}
MAY_IMPORT = {
    "cli": {"cli", "pipelines", "stages", "models", "miners", "core"},
    "pipelines": {"pipelines", "stages", "models", "miners", "core"},
    "stages": {"models", "miners", "core"},  # and the stage's own module
    "models": {"models", "core"},
    "miners": {"miners", "core"},
    "core": {"core"},
}


def layer_of(module: str) -> str:
    if module in ("edumine.cli", "edumine.themes_cli"):
        return "cli"
    for prefix, layer in (("edumine.pipelines.stages.", "stages"), ("edumine.pipelines", "pipelines"),
                          ("edumine.models", "models"), ("edumine.miners", "miners")):
        if module.startswith(prefix):
            return layer
    return "core"


def module_of(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = [FOLDERS[relative.parts[0]], *relative.parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name == "edumine" or name.startswith("edumine.")]


def violations(root: Path) -> list[str]:
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            module = module_of(path, root)
            mine = layer_of(module)
            for name in imports_of(path):
                theirs = layer_of(name)
                if name == "edumine.pipelines.stages" or name == module or name.startswith(module + "."):
                    continue  # the stage package itself (Stage, discovery) and a module's own names
                if theirs not in MAY_IMPORT[mine] or (mine == theirs == "stages"):
                    found.append(f"{path.relative_to(root)}: {mine} imports {theirs} ({name})")
    return sorted(set(found))


def test_no_import_goes_upward_or_from_stage_to_stage() -> None:
    assert violations(ROOT) == []


def test_the_check_catches_a_planted_stage_to_stage_import(tmp_path: Path) -> None:
    import shutil

    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    lineage = tmp_path / "pipelines" / "stages" / "lineage.py"
    lineage.write_text(lineage.read_text() + "\n\ndef planted():\n    from edumine.pipelines.stages.topics import "
                                               "TopicsConfig\n    return TopicsConfig\n")
    models = tmp_path / "models" / "participation.py"
    models.write_text(models.read_text() + "\n\nfrom edumine.pipelines.runner import RunContext  # noqa\n")
    assert violations(tmp_path) == [
        "models/participation.py: models imports pipelines (edumine.pipelines.runner)",
        "models/participation.py: models imports pipelines (edumine.pipelines.runner.RunContext)",
        "pipelines/stages/lineage.py: stages imports stages (edumine.pipelines.stages.topics)",
        "pipelines/stages/lineage.py: stages imports stages (edumine.pipelines.stages.topics.TopicsConfig)",
    ]
