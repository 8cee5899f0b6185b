"""Configuration: YAML validated once, at the edge, by pydantic models that forbid unknown keys.

``load_config`` reports every problem at once with its dotted path (``sources.0.paths``), applies
command-line overrides (``--set topics.min_size=30``) before validation, and resolves relative paths
against the working directory, so that the resolved config in a run's manifest says exactly what ran.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from edumine import registry
from edumine.errors import ConfigError


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class WindowsConfig(StrictModel):
    """Time windows that topics, themes and participation are summarised over."""

    unit: Literal["month", "quarter", "semester", "year"] = "semester"


class PrivacyConfig(StrictModel):
    """Where the pseudonymisation key comes from. The key itself never enters config or outputs."""

    key_env: str = "EDUMINE_PSEUDONYM_KEY"
    key_file: Path = Path("~/.config/edumine/pseudonym.key")


class PlausibleTimeConfig(StrictModel):
    """Creation times outside [since, until) are quarantined as ``bad_time`` (miners/records.py)."""

    since: Optional[date] = Field(date(2005, 6, 1), description="default: the month Reddit opened; set an "
                                                                 "earlier date for older blogs or forums")
    until: Optional[date] = Field(None, description="exclusive; null: now + 1 day")


class CollectConfig(StrictModel):
    """How collection writes to the lake."""

    chunk_rows: int = Field(50_000, ge=100, description="records buffered before they are staged to disk")
    plausible_time: PlausibleTimeConfig = PlausibleTimeConfig()

    def plausible(self) -> tuple[float, float]:
        from edumine.miners.records import plausible_range

        return plausible_range(self.plausible_time.since, self.plausible_time.until)


class ConfigBase(StrictModel):
    lake: Path = Path("data/lake")
    windows: WindowsConfig = WindowsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    collect: CollectConfig = CollectConfig()

    def config_hash(self) -> str:
        return hash_config(self)

    def source_label(self, index: int) -> str:
        source = self.sources[index]  # type: ignore[attr-defined]
        return source.name or f"{index}:{source.kind}"


@lru_cache(maxsize=8)
def _config_model(kinds: tuple[str, ...], sections: tuple[str, ...]) -> type[ConfigBase]:
    models = tuple(registry.sources.get(kind).Config for kind in kinds)
    source_type: Any = models[0] if len(models) == 1 else Annotated[Union[models], Field(discriminator="kind")]
    fields: dict[str, Any] = {"sources": (list[source_type], Field(min_length=1))}
    for name in sections:
        section = registry.config_sections.get(name)
        fields[name] = (section, Field(default_factory=section))
    return create_model("Config", __base__=ConfigBase, **fields)


def config_model() -> type[ConfigBase]:
    """The Config model for every source kind and stage section registered (built-ins are loaded first)."""
    import edumine.miners  # noqa: F401  (registers the built-in source kinds)
    from edumine.stages import discover_stages

    discover_stages()
    return _config_model(tuple(registry.sources.names()), tuple(registry.config_sections.names()))


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> list[tuple[list[str], Any]]:
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", [(item, "expected KEY=VALUE, e.g. --set windows.unit=year")])
        parsed.append((key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None))
    return parsed


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Set dotted keys in the raw config (list items by index: ``sources.0.since=2018-01-01``)."""
    for path, value in parse_overrides(overrides):
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            if isinstance(node, list):
                node = node[_list_index(node, part, path[: depth + 1])]
            else:
                node = node.setdefault(part, {})
        last = path[-1]
        if isinstance(node, list):
            node[_list_index(node, last, path)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError("--set", [(".".join(path), "cannot set a key inside a plain value")])
    return data


def _list_index(node: list[Any], part: str, path: list[str]) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError("--set", [(".".join(path), f"expected a list index below {len(node)}")])
    return int(part)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), *,
                data: dict[str, Any] | None = None, base_dir: Path | None = None) -> ConfigBase:
    """Load, override, validate and resolve a config. Raises ConfigError listing every problem."""
    origin = str(path) if path is not None else "<dict>"
    if data is None:
        if path is None:
            raise ConfigError(origin, [("", "no config given: pass --config FILE (e.g. configs/default.yaml)")])
        file = Path(path)
        if not file.is_file():
            raise ConfigError(origin, [("", f"file not found (working directory {Path.cwd()})")])
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(origin, [("", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(origin, [("", "the top level must be a mapping of sections (lake, sources, ...)")])
    data = apply_overrides(json.loads(json.dumps(data, default=str)), overrides)
    try:
        config = config_model().model_validate(data)
    except ValidationError as exc:
        raise ConfigError(origin, [_problem(error) for error in exc.errors()]) from None
    return resolve_paths(config, base_dir or Path.cwd())


def _problem(error: Any) -> tuple[str, str]:
    loc = [str(part) for part in error["loc"]]
    # Discriminated unions put the tag in the path (sources.0.reddit.dumps.v1.paths): drop it.
    if len(loc) > 2 and loc[0] == "sources" and loc[2] in registry.sources:
        del loc[2]
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling; unknown keys are errors)"
    return ".".join(loc), message


def resolve_paths(config: ConfigBase, base_dir: Path) -> ConfigBase:
    def resolve(value: Path | str) -> str:
        expanded = Path(value).expanduser()
        return os.path.normpath(expanded if expanded.is_absolute() else (base_dir / expanded))

    config.lake = Path(resolve(config.lake))
    config.privacy.key_file = Path(resolve(config.privacy.key_file))
    for source in config.sources:  # type: ignore[attr-defined]
        if hasattr(source, "paths"):
            source.paths = [resolve(p) for p in source.paths]
    return config


def config_as_dict(config: BaseModel) -> dict[str, Any]:
    """JSON-ready config with secrets masked (pydantic SecretStr dumps as '**********')."""
    return json.loads(config.model_dump_json())


def hash_config(config: BaseModel, *, keys: tuple[str, ...] | None = None) -> str:
    data = config_as_dict(config)
    if keys is not None:
        data = {key: data.get(key) for key in keys}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


DateLike = Union[date, datetime]
