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
from typing import Annotated, Any, ClassVar, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from edumine import registry
from edumine.registry import did_you_mean
from edumine.errors import ConfigError


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment.

    A section that chooses registered implementations names them in ``components``: field -> (registry,
    field of its params or None). ``load_config`` checks each choice and its params against the registry.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    components: ClassVar[dict[str, tuple[str, str | None]]] = {}


class WindowsConfig(StrictModel):
    """Time windows that topics, themes and participation are summarised over."""

    unit: Literal["month", "quarter", "semester", "year"] = "semester"


class PrivacyConfig(StrictModel):
    """Where the pseudonymisation key comes from. The key itself never enters config or outputs."""

    key_env: str = "EDUMINE_PSEUDONYM_KEY"
    key_file: Path = Path("~/.config/edumine/pseudonym.key")
    user_profiles: Literal["exclude", "pseudonymise"] = Field(
        "exclude", description="posts to a user's own profile (Reddit's u_<name> pseudo-subreddits): left out and "
                               "counted as filtered, or kept under the community u_<pseudonym>")


class PlausibleTimeConfig(StrictModel):
    """Creation times outside [since, until) are quarantined as ``bad_time`` (miners/records.py)."""

    since: Optional[date] = Field(date(2005, 6, 1), description="default: the month Reddit opened; set an "
                                                                 "earlier date for older blogs or forums")
    until: Optional[date] = Field(None, description="exclusive; null: now + 1 day")


class CollectConfig(StrictModel):
    """How collection writes to the lake."""

    chunk_rows: int = Field(50_000, ge=100, description="records buffered before they are staged to disk")
    plausible_time: PlausibleTimeConfig = PlausibleTimeConfig()
    skip_unchanged_files: bool = Field(True, description="leave out the dump and export files a collection read "
                                       "before and that have not changed since (size, mtime, digest of the "
                                       "first and last MiB); false rereads every file")

    def plausible(self) -> tuple[float, float]:
        from edumine.schema import plausible_range

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
                data: dict[str, Any] | None = None, base_dir: Path | None = None,
                check_inputs: bool = False) -> ConfigBase:
    """Load, override, validate and resolve a config. Raises ConfigError listing every problem.

    ``check_inputs``: also report file sources that match no file (commands that collect ask for it)."""
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
    model = config_model()
    problems = component_problems(model, data)
    if check_inputs:
        problems += input_problems(data, base_dir or Path.cwd())
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(error, model, data) for error in exc.errors()] + problems
    if problems:
        raise ConfigError(origin, sorted(dict.fromkeys(problems), key=lambda p: _path_order(p[0])))
    resolve_defaults(config, data)
    return resolve_paths(config, base_dir or Path.cwd())


def resolve_defaults(config: ConfigBase, data: dict[str, Any]) -> None:
    """Defaults that depend on other sections: a section with ``resolve_defaults(config, given)`` sets them,
    ``given`` being what the config file and overrides gave for that section (so a value set on purpose is
    never replaced). The resolved values are what the run manifest records."""
    for name in registry.config_sections.names():
        hook = getattr(getattr(config, name, None), "resolve_defaults", None)
        if callable(hook):
            given = data.get(name)
            hook(config, given if isinstance(given, dict) else {})


def _path_order(path: str) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.split(".")]


def _problem(error: Any, model: type[BaseModel], data: dict[str, Any]) -> tuple[str, str]:
    loc = [str(part) for part in error["loc"]]
    # Discriminated unions put the tag in the path (sources.0.reddit.dumps.v1.paths): drop it.
    if len(loc) > 2 and loc[0] == "sources" and loc[2] in registry.sources:
        del loc[2]
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        known = _fields_at(model, loc[:-1], data)
        suggestion = did_you_mean(loc[-1], known)
        message = f"unknown key{suggestion}" if suggestion else \
            "unknown key (unknown keys are errors" + (f"; known here: {', '.join(known)})" if known else ")")
    return ".".join(loc), message


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The config model behind a field's annotation (``Section``, ``Optional[Section]``, ...), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        found = _section_model(arg)
        if found is not None:
            return found
    return None


def _fields_at(model: type[BaseModel], loc: list[str], data: dict[str, Any]) -> list[str]:
    """Field names of the config model at ``loc`` (``sources.N`` follows the source's kind)."""
    current: type[BaseModel] | None = model
    node: Any = data
    for index, part in enumerate(loc):
        if current is None:
            return []
        if index == 1 and loc[0] == "sources" and part.isdigit():
            kind = (node[int(part)] or {}).get("kind") if isinstance(node, list) and int(part) < len(node) else None
            current = registry.sources.get(kind).Config if kind in registry.sources else None
            node = node[int(part)] if current is not None else None
            continue
        field = current.model_fields.get(part)
        current = _section_model(field.annotation) if field is not None else None
        node = node.get(part) if isinstance(node, dict) else None
    return sorted(current.model_fields) if current is not None else []


def component_problems(model: type[BaseModel], data: Any, path: str = "") -> list[tuple[str, str]]:
    """Every registered-component choice under ``model`` checked against its registry, params included."""
    if not isinstance(data, dict):
        return []
    problems: list[tuple[str, str]] = []
    components = getattr(model, "components", {})
    for field_name, (registry_name, params_field) in components.items():
        defaults = model.model_fields
        name = data.get(field_name, defaults[field_name].default)
        params = data.get(params_field) if params_field else None
        problems += getattr(registry, registry_name).check(
            name, params, f"{path}{field_name}", f"{path}{params_field}" if params_field else None)
    for field_name, field in model.model_fields.items():
        section = _section_model(field.annotation)
        if section is not None and field_name != "sources":
            problems += component_problems(section, data.get(field_name), f"{path}{field_name}.")
    return problems


def input_problems(data: dict[str, Any], base_dir: Path) -> list[tuple[str, str]]:
    """File sources whose paths match no file at all, checked before any server or stage starts."""
    from edumine.files import expand_paths

    problems = []
    for index, source in enumerate(data.get("sources") or []):
        if not isinstance(source, dict) or not isinstance(source.get("paths"), list) or not source["paths"]:
            continue
        patterns = [str(p) for p in source["paths"]]
        absolute = [p if Path(p).expanduser().is_absolute() else str(base_dir / p) for p in patterns]
        files, _ = expand_paths([str(Path(p).expanduser()) for p in absolute])
        if not files:
            hint = ""
            if any("shared" in pattern for pattern in patterns):
                hint = (" The default config reads the corpora in ../shared beside the project; without them, "
                        "point this source at your own Pushshift/Arctic Shift dumps (*.zst) or CSV exports, e.g. "
                        f"--set 'sources.{index}.paths=[\"data/raw/*.zst\"]'.")
            problems.append((f"sources.{index}.paths", f"no file matches {', '.join(patterns)} (working "
                                                       f"directory {base_dir}).{hint}"))
    return problems


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
