"""Versioned registries in spaCy's style: implementations are chosen by name in config.

A behaviour change ships under a new name (``reddit.dumps.v2``) so that old configs keep reproducing
old results. Every registry of the project lives here; each knows the modules that fill it (``providers``)
and imports them on first use, so a config can be checked against every registry at load while the CLI
stays fast. Each registered implementation carries a pydantic params model: its ``Params`` attribute when
it declares one, else one built from its ``__init__`` keywords (scikit-learn's contract: every parameter a
keyword with a default), minus what the pipeline itself passes (``injected``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from edumine.errors import EdumineError

T = TypeVar("T")


class RegistryError(EdumineError, LookupError):
    """A name that no implementation is registered under."""

    code = "E-REGISTRY"


def did_you_mean(name: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or nothing."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    def __init__(self, what: str, providers: tuple[str, ...] = (), injected: tuple[str, ...] = ()) -> None:
        self.what = what
        self.providers = providers
        self.injected = injected
        self._items: dict[str, T] = {}
        self._params: dict[str, type[BaseModel]] = {}
        self._loaded = not providers

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.providers:
                if module.endswith(".*"):  # every public module of a package (plug-in discovery)
                    import pkgutil

                    package = importlib.import_module(module[:-2])
                    for found in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                        if not found.name.startswith("_"):
                            importlib.import_module(f"{package.__name__}.{found.name}")
                else:
                    importlib.import_module(module)

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise RegistryError(f"{self.what} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        known = self.names()
        return f"unknown {self.what} {name!r}{did_you_mean(str(name), known)}; known: {', '.join(known) or 'none'}"

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def params_model(self, name: str) -> type[BaseModel]:
        """The params model of ``name``: what its config ``params`` may hold, with the defaults it uses."""
        model = self._params.get(name)
        if model is None:
            item = self.get(name)
            model = getattr(item, "Params", None) or _params_from_init(item, name, self.injected)
            self._params[name] = model
        return model

    def check(self, name: Any, params: Any, path: str, params_path: str | None) -> list[tuple[str, str]]:
        """Problems, as (dotted path, message), of choosing ``name`` with ``params``; empty when fine."""
        problems = []
        if not isinstance(name, str) or name not in self:
            problems.append((path, self.unknown(str(name))))
            # Check the params against the likely intended implementation, so that one run reports them too.
            close = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.6)
            if not close:
                return problems
            name = close[0]
        if params_path is None or params is None:
            return problems
        if not isinstance(params, dict):
            return [(params_path, "must be a mapping of parameter names to values")]
        model = self.params_model(name)
        try:
            model.model_validate(params)
        except ValidationError as exc:
            for error in exc.errors():
                key = ".".join(str(part) for part in error["loc"])
                message = error["msg"]
                if error["type"] == "extra_forbidden":
                    message = (f"{name} has no parameter {key!r}{did_you_mean(key, list(model.model_fields))}; "
                               f"its parameters: {', '.join(model.model_fields) or 'none'}")
                problems.append((f"{params_path}.{key}", message))
        return problems


def _params_from_init(item: Any, name: str, injected: tuple[str, ...]) -> type[BaseModel]:
    init = item.__init__ if inspect.isclass(item) else item
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # noqa: BLE001  (annotations naming types imported only for type checkers)
        hints = {}
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(init).parameters.values():
        if parameter.name in ("self", *injected) or parameter.kind in (parameter.VAR_POSITIONAL,
                                                                         parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hints.get(parameter.name, Any), default)
    return create_model(f"{name} params", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                        **fields)


sources: Registry[Any] = Registry("source kind", providers=("edumine.miners",))
# A stage module registers its stage and its config section; each lives in pipelines/stages/.
stages: Registry[Any] = Registry("pipeline stage", providers=("edumine.pipelines.stages.*",))
config_sections: Registry[Any] = Registry("config section", providers=("edumine.pipelines.stages.*",))
embedders: Registry[Any] = Registry("embedding backend", providers=("edumine.models.embeddings.backends",
                                                                     "edumine.models.embeddings.concat"))
lineage_methods: Registry[Any] = Registry("lineage method", providers=("edumine.models.lineage.tracking",))
theme_classifiers: Registry[Any] = Registry("theme classifier", providers=("edumine.models.themes.estimators",),
                                            injected=("codebook", "cache_dir", "seed"))
topic_clusterings: Registry[Any] = Registry("topic clustering", providers=("edumine.models.topics.clustering",))
