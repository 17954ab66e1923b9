"""A generic typed registry used for models, tasks, task kinds, data sources and metrics.

Entries are registered either with an object (decorator) or with a lazy ``"module:attr"``
string that is imported only when the entry is first used, so listing names never imports
heavy libraries.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from cytoreg.errors import RegistryError

T = TypeVar("T")

BUILTIN = "built-in"


@dataclass
class Entry(Generic[T]):
    name: str
    target: Any  # the object, or a "module:attr" string resolved lazily
    origin: str = BUILTIN
    description: str = ""
    kind: str = ""
    meta: dict = field(default_factory=dict)

    def load(self) -> T:
        if isinstance(self.target, str):
            self.target = import_string(self.target, f"{self.name} ({self.origin})")
        return self.target


def import_string(ref: str, what: str = "") -> Any:
    """Import ``"package.module:attribute"``; a failure names the entry that asked for it."""
    if ":" not in ref:
        raise RegistryError(f"{what}: '{ref}' is not of the form 'package.module:attribute'")
    module_name, attr = ref.split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(
            f"{what}: cannot import module '{module_name}' ({exc}). "
            "Install the package that provides it, or fix the reference."
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise RegistryError(f"{what}: module '{module_name}' has no attribute '{attr}'") from exc
    return obj


def suggest(name: str, choices: list[str]) -> str:
    """' — did you mean 'x'?' or an empty string: a different case (``UNI``), names that start with
    it (``claude`` → the claude-* models, at most 5), else the closest spellings."""
    low = name.lower()
    close = [c for c in choices if c.lower() == low]
    if not close and len(low) >= 3:
        close = sorted((c for c in choices if c.lower().startswith(low)), key=lambda c: (len(c), c))[:5]
    if not close:
        close = difflib.get_close_matches(low, choices, n=3, cutoff=0.6)
    if not close:
        return ""
    return " — did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


class Registry(Generic[T]):
    """Name → entry map for one kind of thing ("model adapter", "metric", ...)."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, target: Any, *, origin: str = BUILTIN, description: str = "",
            kind: str = "", replace: bool = False, **meta: Any) -> Entry[T]:
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.what} names must be non-empty strings, got {name!r}")
        if name in self._entries and not replace:
            prev = self._entries[name]
            raise RegistryError(
                f"{self.what} '{name}' is defined twice: by {prev.origin} and by {origin}. "
                "Rename one of them or remove the duplicate."
            )
        entry: Entry[T] = Entry(name, target, origin, description, kind, dict(meta))
        self._entries[name] = entry
        return entry

    def register(self, name: str, *, description: str = "", kind: str = "",
                 origin: str = BUILTIN, **meta: Any) -> Callable[[T], T]:
        """Decorator form: ``@metrics.register("accuracy")``."""

        def deco(obj: T) -> T:
            desc = description or (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]
            self.add(name, obj, origin=origin, description=desc, kind=kind, **meta)
            return obj

        return deco

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            raise RegistryError(
                f"unknown {self.what} '{name}'{suggest(name, known)}"
                + ("" if suggest(name, known) else f". Known: {', '.join(known) or '(none)'}.")
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
