"""The codebook loader: the shared SDL codebook, and a researcher's own codebook with mistakes in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edumine.models.themes.codebook import CodebookError, load_codebook
from conftest import SHARED

SDL = SHARED / "codebook" / "sdl_themes.yaml"


def test_shared_codebook_loads_with_all_eleven_themes() -> None:
    codebook = load_codebook(SDL)
    assert len(codebook.ids) == 11
    assert codebook.ids[0] == "seek_practice_advice" and "uphold_community_norms" in codebook.ids
    norms = codebook.theme("uphold_community_norms")
    assert norms.display == "Upholding community norms"
    assert norms.examples and "wrong sub" in norms.cues
    # the codebook's words for a theme: definition first, then the example and the cues
    texts = norms.descriptions()
    assert texts[0].startswith("Upholding community norms. The writer refers to the forum's rules")
    assert len(texts) == 1 + len(norms.examples) + len(norms.cues)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "codebook.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_researchers_own_codebook_is_used_as_is(tmp_path: Path) -> None:
    path = _write(tmp_path, """
themes:
  - id: humour
    definition: The post jokes about school life.
    examples: ["When the copier works on the first try"]
  - id: tech_help
    label: Technology help
    definition: The post asks how to make a classroom technology work.
""")
    codebook = load_codebook(path)
    assert codebook.ids == ["humour", "tech_help"]
    assert codebook.theme("humour").display == "humour"
    assert codebook.fingerprint() != load_codebook(SDL).fingerprint()


@pytest.mark.parametrize("body, expected", [
    ("themes:\n  - id: a\n    definition: x\n  - id: a\n    definition: y\n", "repeated: a"),
    ("themes:\n  - id: a\n    definition: '  '\n", "needs a definition"),
    ("themes:\n  - id: a\n", "themes.0.definition (a): Field required"),
    ("themes:\n  - id: Bad Id\n    definition: x\n", "lower-case letters"),
    ("themes:\n  - id: a\n    definition: x\n    colour: red\n", "unknown key"),
    ("themes: []\n", "at least 1"),
    ("version: 1\n", "`themes:` list"),
    ("themes: [unclosed\n", "not valid YAML"),
])
def test_invalid_codebooks_are_refused_with_the_reason(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(CodebookError) as error:
        load_codebook(_write(tmp_path, body))
    assert expected in str(error.value)
    assert "codebook" in str(error.value)


def test_missing_codebook_names_the_file_and_the_setting(tmp_path: Path) -> None:
    with pytest.raises(CodebookError, match="themes.codebook"):
        load_codebook(tmp_path / "nope.yaml")
