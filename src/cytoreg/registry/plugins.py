"""Third-party registration through entry points.

Groups:
- ``cytoreg.models``:  NAME = "pkg.module:AdapterClass"
- ``cytoreg.tasks``:   ``kind.NAME`` = task-kind class, ``source.NAME`` = data-source class
- ``cytoreg.metrics``: NAME = "pkg.module:function"
- ``cytoreg.specs``:   any name = "pkg.specs_package" (its folder) or "pkg.module:ATTR" (a path)
"""
from __future__ import annotations

import importlib.util
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from cytoreg.errors import RegistryError
from cytoreg.registry.builtins import ADAPTERS, METRICS, SOURCES, TASK_KINDS
from cytoreg.registry.core import import_string

_loaded = False


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"package {dist.name}" if dist is not None else f"entry point {ep.value}"


def load_plugins(problems: list[str] | None = None) -> None:
    """Register every installed plugin once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    sink = problems if problems is not None else []
    for ep in entry_points(group="cytoreg.models"):
        _add(ADAPTERS, ep.name, ep, sink)
    for ep in entry_points(group="cytoreg.metrics"):
        _add(METRICS, ep.name, ep, sink)
    for ep in entry_points(group="cytoreg.tasks"):
        prefix, _, name = ep.name.partition(".")
        if prefix == "kind" and name:
            _add(TASK_KINDS, name, ep, sink)
        elif prefix == "source" and name:
            _add(SOURCES, name, ep, sink)
        else:
            sink.append(f"{_origin(ep)}: entry point '{ep.name}' in group cytoreg.tasks must be named "
                        "'kind.NAME' (a task kind) or 'source.NAME' (a data source)")
    if problems is None and sink:
        raise RegistryError("\n".join(sink))


def _add(registry, name: str, ep: EntryPoint, sink: list[str]) -> None:
    try:
        registry.add(name, ep.value, origin=_origin(ep), description=f"from {ep.value}")
    except RegistryError as exc:
        sink.append(str(exc))


def plugin_spec_dirs(problems: list[str]) -> list[tuple[Path, str]]:
    """Folders of YAML specs that installed packages declare under ``cytoreg.specs``."""
    out = []
    for ep in entry_points(group="cytoreg.specs"):
        origin = _origin(ep)
        try:
            if ":" in ep.value:
                path = Path(str(import_string(ep.value, f"spec dir {ep.name} ({origin})")))
            else:
                spec = importlib.util.find_spec(ep.value)
                if spec is None or not spec.submodule_search_locations:
                    raise RegistryError(f"{origin}: cytoreg.specs entry '{ep.name}' = '{ep.value}' "
                                        "is not an importable package folder")
                path = Path(list(spec.submodule_search_locations)[0])
        except (RegistryError, ImportError) as exc:
            problems.append(str(exc))
            continue
        if not path.is_dir():
            problems.append(f"{origin}: cytoreg.specs entry '{ep.name}' points at {path}, which is not a folder")
            continue
        out.append((path, origin))
    return out
