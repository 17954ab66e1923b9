"""A cache of the parsed and validated specs (built-in, plugin and ``--include``), so that ``cytoreg list`` and
every run do not re-read ~40 YAML files, re-check them against the schemas and import every
task kind, data source and adapter to validate their options.

One JSON file (never pickle) in the user cache directory (``CYTOREG_CACHE_DIR`` overrides it).
Its key covers what the result depends on: cytoreg's version, each spec file's path, mtime and
size (an ``--include`` file's content hash instead), and the registered plugin entries (names and
targets), since those decide what validates. One file per set of spec folders.
A spec is stored as merged through ``extends`` but *before* ``${VAR}`` expansion, with the names
of the variables it uses and a digest of their values: a hit re-expands it (values are never
written to disk), a changed variable re-validates that spec. Anything unreadable, stale or
malformed is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
FORMAT = 1


def cache_dir() -> Path:
    env = os.environ.get("CYTOREG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cytoreg", appauthor=False))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cytoreg")
    except PackageNotFoundError:
        return "unknown"


def fingerprint(files: Iterable[tuple[Path, str]], registries: Iterable[Any],
                by_content: Iterable[Path] = ()) -> str:
    """Key of one catalog: version, every (path, origin, mtime, size), every registry entry.
    Files in ``by_content`` (``--include`` files, which users edit) are keyed by their bytes
    instead of their mtime, so an edit within the file system's timestamp resolution is seen."""
    by_content = set(by_content)
    h = hashlib.sha256(f"{FORMAT}|{_version()}".encode())
    for path, origin in files:
        if path in by_content:
            h.update(f"|{path}|{origin}|sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}".encode())
        else:
            st = path.stat()
            h.update(f"|{path}|{origin}|{st.st_mtime_ns}|{st.st_size}".encode())
    for reg in registries:
        for e in reg:
            target = e.target.replace(":", ".") if isinstance(e.target, str) else \
                f"{getattr(e.target, '__module__', '')}.{getattr(e.target, '__qualname__', '')}"
            h.update(f"|{reg.what}:{e.name}:{e.origin}:{target}".encode())
    return h.hexdigest()


def env_vars(data: Any) -> list[str]:
    """Names of the ``${VAR}`` variables a spec uses."""
    return sorted(set(_VAR.findall(json.dumps(data, ensure_ascii=False))))


def env_digest(names: Iterable[str]) -> str:
    """A digest of the variables' current values (so a change re-validates; values stay off disk)."""
    h = hashlib.sha256()
    for name in names:
        h.update(f"{name}\0{os.environ.get(name)}\0".encode())
    return h.hexdigest()


def _file(roots: Iterable[Path]) -> Path:
    tag = hashlib.sha256("|".join(str(r) for r in roots).encode()).hexdigest()[:16]
    return cache_dir() / f"catalog-{tag}.json"


def read(roots: list[Path], key: str) -> dict | None:
    """The stored catalog for these spec folders if its key matches; None otherwise."""
    try:
        data = json.loads(_file(roots).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("raws"), list) \
            or not isinstance(data.get("specs"), dict):
        return None
    return data


def write(roots: list[Path], key: str, raws: list[dict], specs: dict[str, dict]) -> None:
    """Store atomically; a cache that cannot be written is only slower, never an error."""
    payload = {"key": key, "raws": raws, "specs": specs}
    try:
        text = json.dumps(payload, ensure_ascii=False)
        if json.loads(text) != payload:
            return  # something JSON does not keep (a date, an integer mapping key): parse each time
    except (TypeError, ValueError):
        return
    path = _file(roots)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
