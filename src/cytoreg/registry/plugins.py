"""Third-party registration through entry points (the API is documented in docs/plugins.md).

Groups:
- ``cytoreg.models``:  NAME = "pkg.module:AdapterClass"
- ``cytoreg.tasks``:   ``kind.NAME`` = task-kind class, ``source.NAME`` = data-source class
- ``cytoreg.metrics``: NAME = "pkg.module:function"
- ``cytoreg.specs``:   any name = "pkg.specs_package" (its folder) or "pkg.module:ATTR" (a path)

A malformed entry point is a warning naming its package; the other plugins still load.
``CYTOREG_PLUGINS`` selects plugins by distribution name: unset or ``all`` = every installed
plugin, ``none`` = none, ``a,b`` = only those.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from cytoreg.errors import RegistryError
from cytoreg.registry.builtins import ADAPTERS, METRICS, SOURCES, TASK_KINDS
from cytoreg.registry.core import Entry, import_string, suggest

log = logging.getLogger("cytoreg.plugins")

GROUPS = ("cytoreg.models", "cytoreg.tasks", "cytoreg.metrics", "cytoreg.specs")
_loaded = False
#: warnings of this process (also logged), for `cytoreg list` and tests
WARNINGS: list[str] = []
_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_PKG = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else None


def _origin(ep: EntryPoint) -> str:
    name = _dist_name(ep)
    return f"package {name}" if name is not None else f"entry point {ep.value}"


def plugin_info(origin: str) -> dict[str, str] | None:
    """``{"name", "version"}`` of the plugin package an origin string names (``package X ...``)."""
    m = re.match(r"^package (\S+)", origin or "")
    if not m:
        return None
    name = m.group(1)
    try:
        return {"name": name, "version": version(name)}
    except PackageNotFoundError:
        return {"name": name, "version": "unknown"}


def _warn(message: str) -> None:
    if message not in WARNINGS:
        WARNINGS.append(message)
        log.warning(message)


def selected(group: str) -> list[EntryPoint]:
    """The group's entry points of the plugins ``CYTOREG_PLUGINS`` selects."""
    eps = list(entry_points(group=group))
    choice = os.environ.get("CYTOREG_PLUGINS", "").strip()
    if not choice or choice.lower() == "all":
        return eps
    if choice.lower() == "none":
        return []
    wanted = {_norm(x) for x in choice.split(",") if x.strip()}
    return [ep for ep in eps if _dist_name(ep) is not None and _norm(_dist_name(ep)) in wanted]


def installed_plugins() -> dict[str, str]:
    """Every distribution with a cytoreg entry point (whether selected or not) → version."""
    out: dict[str, str] = {}
    for group in GROUPS:
        for ep in entry_points(group=group):
            name = _dist_name(ep)
            if name:
                try:
                    out[name] = version(name)
                except PackageNotFoundError:
                    out[name] = "unknown"
    return dict(sorted(out.items()))


def _check_selection() -> None:
    choice = os.environ.get("CYTOREG_PLUGINS", "").strip()
    if not choice or choice.lower() in ("all", "none"):
        return
    have = installed_plugins()
    norm = {_norm(n): n for n in have}
    for want in (x.strip() for x in choice.split(",") if x.strip()):
        if _norm(want) not in norm:
            _warn(f"CYTOREG_PLUGINS names '{want}', which is not an installed cytoreg plugin"
                  f"{suggest(want, list(have))} (installed: {', '.join(have) or 'none'})")


def load_plugins(problems: list[str] | None = None) -> None:
    """Register the selected plugins once per process. A malformed entry point is skipped with a
    warning naming its package (``problems`` is kept for callers that collect; it is not used)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    _check_selection()
    for ep in selected("cytoreg.models"):
        _add(ADAPTERS, ep.name, ep)
    for ep in selected("cytoreg.metrics"):
        _add(METRICS, ep.name, ep)
    for ep in selected("cytoreg.tasks"):
        prefix, _, name = ep.name.partition(".")
        if prefix == "kind" and name:
            _add(TASK_KINDS, name, ep)
        elif prefix == "source" and name:
            _add(SOURCES, name, ep)
        else:
            _warn(f"{_origin(ep)}: entry point '{ep.name}' in group cytoreg.tasks must be named "
                  "'kind.NAME' (a task kind) or 'source.NAME' (a data source); skipped")


def _add(registry, name: str, ep: EntryPoint) -> None:
    origin = _origin(ep)
    if not _REF.match(ep.value.strip()):
        _warn(f"{origin}: entry point '{ep.name}' = '{ep.value}' is not of the form 'package.module:attribute'; "
              "skipped (fix the package's entry points)")
        return
    try:
        registry.add(name, ep.value.strip(), origin=origin, description="")
    except RegistryError as exc:
        _warn(f"{exc}; the plugin's entry was skipped")


def describe(entry: Entry, group: str) -> tuple[str, str]:
    """(kind, first docstring line) of a plugin entry, importing it; an import failure is the
    description (naming the package), never an exception."""
    if entry.kind and entry.description:
        return entry.kind, entry.description
    try:
        obj: Any = entry.load()
    except Exception as exc:  # noqa: BLE001 - list must still show everything else
        return entry.kind or "?", f"cannot import: {exc}"
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    first = doc[0] if doc else ""
    if group == "adapters":
        kind = getattr(obj, "capability", "") or "?"
    elif group == "metrics":
        kind = "metric"
    elif group == "kinds":
        kind = "task kind"
    elif group == "sources":
        kind = "data source"
    else:
        kind = entry.kind
    return kind, first


def plugin_spec_dirs(problems: list[str]) -> list[tuple[Path, str]]:
    """Folders of YAML specs that the selected packages declare under ``cytoreg.specs``; a
    broken entry is a warning naming the package."""
    out = []
    for ep in selected("cytoreg.specs"):
        origin = _origin(ep)
        try:
            if ":" in ep.value:
                path = Path(str(import_string(ep.value, f"spec dir {ep.name} ({origin})")))
            else:
                if not _PKG.match(ep.value.strip()):
                    raise RegistryError(f"{origin}: cytoreg.specs entry '{ep.name}' = '{ep.value}' is neither a "
                                        "package name nor 'package.module:ATTR'")
                spec = importlib.util.find_spec(ep.value.strip())
                if spec is None or not spec.submodule_search_locations:
                    raise RegistryError(f"{origin}: cytoreg.specs entry '{ep.name}' = '{ep.value}' "
                                        "is not an importable package folder")
                path = Path(list(spec.submodule_search_locations)[0])
        except (RegistryError, ImportError, ValueError) as exc:
            _warn(f"{exc}; its specs were skipped")
            continue
        if not path.is_dir():
            _warn(f"{origin}: cytoreg.specs entry '{ep.name}' points at {path}, which is not a folder; skipped")
            continue
        out.append((path, origin))
    return out
