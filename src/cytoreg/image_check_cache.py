"""Image checks remembered across runs: the :class:`~cytoreg.images.ImageInfo` of a file that
decoded, keyed by its resolved path, size and modification time (ns) and cytoreg's version, in one
JSON file in the user cache directory (``CYTOREG_CACHE_DIR`` overrides it). A file that changes
gets a new key and is decoded again; failures are never remembered, so a fixed file is seen at
once. Rerunning a task then costs a ``stat`` per image instead of a full decode."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cytoreg.images import ImageInfo

FILE = "image-checks.json"
MAX_ENTRIES = 500_000


def _path() -> Path:
    from cytoreg.registry.catalog_cache import cache_dir

    return cache_dir() / FILE


def file_key(src: Any) -> str | None:
    """``path|size|mtime_ns|version`` for an image read from a file; None for other sources."""
    from cytoreg import __version__
    from cytoreg.tasks.samples import ImageRef

    path = src.path if isinstance(src, ImageRef) else src if isinstance(src, (str, Path)) else None
    if path is None:
        return None
    try:
        p = Path(path).resolve()
        st = p.stat()
    except OSError:
        return None
    return f"{p}|{st.st_size}|{st.st_mtime_ns}|{__version__}"


def load() -> dict[str, dict]:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: decode again and rewrite it


def info_from(d: dict) -> ImageInfo | None:
    try:
        return ImageInfo(**{**d, "size": tuple(d["size"]) if d.get("size") else None})
    except TypeError:
        return None


def save(entries: dict[str, dict]) -> None:
    """Atomic rewrite; never fails a run (a read-only cache dir just means no cache)."""
    path = _path()
    if len(entries) > MAX_ENTRIES:
        entries = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(entries, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def as_entry(info: ImageInfo) -> dict:
    return asdict(info)
