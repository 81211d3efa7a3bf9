"""Registries by name (the timm pattern) for backbones, heads, balancers, importers, transforms, CAMs.

`register` decorates a factory, `create(name, **params)` builds one, `available()` lists names, and an
unknown name is a `ConfigError` that suggests the closest registered names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ctnodule.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories of one kind (e.g. "backbone")."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        """`modules`: the modules whose import registers the built-in factories; they are imported on the
        first look-up, so importing a stage (e.g. for `ctnodule --help`) does not pay for their
        dependencies."""
        self.kind = kind
        self._modules = modules
        self._factories: dict[str, Callable[..., T]] = {}

    def _load(self) -> None:
        if self._modules:
            modules, self._modules = self._modules, ()
            for module in modules:
                importlib.import_module(module)

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register `factory` under `name` (default: its `__name__`)."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            key = name or factory.__name__
            if key in self._factories:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._factories[key] = factory
            return factory

        return deco

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as `name`; an unknown name lists close matches."""
        self._load()
        try:
            return self._factories[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._factories, n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.available())}"
            ) from None

    def create(self, name: str, **params: Any) -> T:
        """Build the component registered as `name`; `None`-valued params are dropped (timm's rule),
        so unset CLI options never override a component's own defaults."""
        return self.get(name)(**{k: v for k, v in params.items() if v is not None})

    def available(self) -> list[str]:
        self._load()
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._factories
