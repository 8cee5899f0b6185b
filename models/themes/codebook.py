"""A qualitative codebook (themes with definitions, cues and examples) loaded from YAML and validated.

The classifier, the labelling CSV and the prevalence tables all take their theme list from the codebook,
so a researcher swaps in their own codebook by pointing ``themes.codebook`` at another file: no code
changes. A codebook file looks like ``../shared/codebook/sdl_themes.yaml``::

    version: 1
    themes:
      - id: seek_practice_advice          # lower-case identifier, unique
        label: Seeking practice advice     # what a person reads
        definition: The writer asks peers how to handle ...   # required
        cues: ["any advice", "what would you do"]             # optional phrases
        example: "Third-year 7th-grade science. ..."          # optional (or ``examples: [...]``)
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edumine.errors import EdumineError

_THEME_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class CodebookError(EdumineError):
    """A codebook file that cannot be used; the message lists every problem."""

    code = "E-CODEBOOK"


class Theme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    label: str = ""
    definition: str
    cues: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _single_example(cls, data: Any) -> Any:
        """Accept ``example: "..."`` (one) as well as ``examples: [...]``."""
        if isinstance(data, dict) and "example" in data:
            data = dict(data)
            one = data.pop("example")
            data["examples"] = ([one] if one else []) + list(data.get("examples") or [])
        return data

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _THEME_ID.match(value):
            raise ValueError(f"theme id {value!r} must be lower-case letters, digits and '_' (it names a CSV column)")
        return value

    @field_validator("definition")
    @classmethod
    def _definition_present(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("every theme needs a definition (the classifier and the labellers read it)")
        return value.strip()

    @property
    def display(self) -> str:
        return self.label or self.id.replace("_", " ")

    def descriptions(self) -> list[str]:
        """The codebook's own words for this theme: definition, examples, and each cue in a sentence."""
        texts = [f"{self.display}. {self.definition}", *self.examples]
        texts += [f"{cue}" for cue in self.cues]
        return texts


class Codebook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int | str = 1
    name: str = ""
    description: str = ""
    themes: tuple[Theme, ...] = Field(min_length=1)
    source: str = ""

    @field_validator("themes")
    @classmethod
    def _unique_ids(cls, themes: tuple[Theme, ...]) -> tuple[Theme, ...]:
        seen: dict[str, int] = {}
        for theme in themes:
            seen[theme.id] = seen.get(theme.id, 0) + 1
        repeated = sorted(t for t, n in seen.items() if n > 1)
        if repeated:
            raise ValueError(f"theme ids must be unique; repeated: {', '.join(repeated)}")
        return themes

    @property
    def ids(self) -> list[str]:
        return [theme.id for theme in self.themes]

    def theme(self, theme_id: str) -> Theme:
        for theme in self.themes:
            if theme.id == theme_id:
                return theme
        raise KeyError(f"theme {theme_id!r} is not in the codebook ({', '.join(self.ids)})")

    def fingerprint(self) -> str:
        """Hash of the themes' content (not the file path): part of a trained model's cache key."""
        data = [theme.model_dump() for theme in self.themes]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_codebook(path: str | Path) -> Codebook:
    """Read and validate a codebook YAML file; raises CodebookError naming every problem and the file."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise CodebookError(f"codebook not found: {file} (working directory {Path.cwd()}). Point `themes.codebook` "
                            "at a YAML file with a `themes:` list (see ../shared/codebook/sdl_themes.yaml)")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CodebookError(f"codebook {file} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "themes" not in data:
        raise CodebookError(f"codebook {file} must be a mapping with a `themes:` list of {{id, label, definition, "
                            "cues, example}} entries")
    data = {**data, "source": str(file)}
    try:
        return Codebook.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            where = ".".join(str(part) for part in loc)
            if len(loc) >= 2 and loc[0] == "themes" and isinstance(loc[1], int):
                themes = data.get("themes") or []
                entry = themes[loc[1]] if loc[1] < len(themes) else None
                if isinstance(entry, dict) and entry.get("id"):
                    where += f" ({entry['id']})"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"  - {where}: {message}")
        raise CodebookError(f"{len(problems)} problem(s) in codebook {file}:\n" + "\n".join(problems)) from None
