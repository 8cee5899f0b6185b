"""Versioned registries in spaCy's style: implementations are chosen by name in config.

A behaviour change ships under a new name (``reddit.dumps.v2``) so that old configs keep reproducing
old results. Registries are filled when the module that defines an implementation is imported;
``edumine.miners`` imports its members eagerly because they are light (heavy libraries load lazily
inside the implementations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    """A name that no implementation is registered under."""


class Registry(Generic[T]):
    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise RegistryError(f"{self.what} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise RegistryError(f"unknown {self.what} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items


sources: Registry[Any] = Registry("source kind")
stages: Registry[Any] = Registry("pipeline stage")
config_sections: Registry[Any] = Registry("config section")
