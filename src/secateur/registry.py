"""One registry for every pluggable piece: scoring methods, patterns, architectures, data sources.

Entries are added by explicit decorators in the modules that define them. `get` imports the list
of built-in modules below once, on first use, so importing secateur registers nothing by itself
and there is no package walking: adding a built-in means adding its module here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from secateur.errors import SecateurError

T = TypeVar("T")

_BUILTIN_MODULES = (
    "secateur.scoring.magnitude",
    "secateur.scoring.wanda",
    "secateur.scoring.ria",
    "secateur.solvers.sparsegpt",
    "secateur.solvers.alps",
    "secateur.solvers.dsnot",
    "secateur.patterns.unstructured",
    "secateur.patterns.nm",
    "secateur.patterns.block",
    "secateur.patterns.tiered",
    "secateur.models.architectures",
    "secateur.models.embedded",
    "secateur.data.embedded",
    "secateur.data.hub",
    "secateur.methods.masks",
    "secateur.methods.width",
    "secateur.methods.depth",
    "secateur.methods.osscar",
    "secateur.methods.experts",
)


class Registry:
    """Maps (kind, name) to an object. Kinds are free-form strings such as "method"."""

    def __init__(self, builtin_modules: tuple[str, ...] = ()) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._builtin_modules = builtin_modules
        self._builtins_loaded = False

    def register(self, kind: str, name: str, *aliases: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            table = self._entries.setdefault(kind, {})
            for key in (name, *aliases):
                if key in table and table[key] is not obj:
                    raise ValueError(f"{kind} {key!r} is registered twice")
                table[key] = obj
            return obj

        return decorator

    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for module in self._builtin_modules:
                importlib.import_module(module)

    def get(self, kind: str, name: str) -> Any:
        self._load_builtins()
        table = self._entries.get(kind, {})
        if name not in table:
            known = ", ".join(self.names(kind)) or "none"
            raise SecateurError(f"unknown {kind} {name!r}; choose one of: {known}")
        return table[name]

    def find(self, kind: str, name: str) -> Any | None:
        self._load_builtins()
        return self._entries.get(kind, {}).get(name)

    def names(self, kind: str) -> list[str]:
        """Primary names and aliases, sorted."""
        self._load_builtins()
        return sorted(self._entries.get(kind, {}))

    def items(self, kind: str) -> list[tuple[str, Any]]:
        self._load_builtins()
        return sorted(self._entries.get(kind, {}).items())


REGISTRY = Registry(_BUILTIN_MODULES)
register = REGISTRY.register
