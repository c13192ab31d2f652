"""One small registry per kind of component (backbones, heads, losses, hashers, indexes, ...).

A new method is one file that decorates its class with ``@REGISTRY.register("name", **metadata)``
plus one import line in its package ``__init__``. The metadata says how the rest of the system
uses the entry (the way timm's ``default_cfgs`` do): ``supervised``, ``needs_logits``,
``needs_classes``, a code-length range, ... so no other module keeps its own list of names.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from hashseek.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a short name to a factory (usually a class) and its metadata."""

    def __init__(self, kind: str, defaults: dict[str, Any] | None = None):
        """``defaults``: the metadata an entry has unless it says otherwise."""
        self.kind = kind
        self.defaults = dict(defaults or {})
        self._entries: dict[str, Callable[..., T]] = {}
        self._metadata: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **metadata) -> Callable[[Callable[..., T]], Callable[..., T]]:
        unknown = set(metadata) - set(self.defaults) if self.defaults else set()
        if unknown:
            raise TypeError(f"{self.kind} {name!r}: unknown metadata {sorted(unknown)}; known: {sorted(self.defaults)}")

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = factory
            self._metadata[name] = {**self.defaults, **metadata}
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def metadata(self, name: str) -> dict[str, Any]:
        """The entry's metadata (a copy)."""
        self.get(name)
        return dict(self._metadata[name])

    def create(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)

    def names(self, **where) -> list[str]:
        """Registered names, optionally those whose metadata match every ``key=value`` given."""
        return sorted(n for n in self._entries if all(self._metadata[n].get(k) == v for k, v in where.items()))

    def __contains__(self, name: str) -> bool:
        return name in self._entries
