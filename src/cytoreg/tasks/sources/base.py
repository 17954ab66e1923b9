"""Base class for data sources."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterator

from cytoreg.errors import DataError
from cytoreg.tasks.samples import Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp")


def is_junk(path: Path) -> bool:
    """macOS and editor droppings that real dataset archives contain."""
    return any(part == "__MACOSX" or part.startswith("._") or part in (".DS_Store", "Thumbs.db")
               for part in path.parts)


def resolve_path(value: str) -> Path:
    """A path; ``package:REL`` means REL inside the installed cytoreg package (shipped data),
    ``package:PKG:REL`` REL inside the installed package PKG (a plugin's data, through
    ``importlib.resources``)."""
    if value.startswith("package:"):
        from importlib import resources

        rest = value[len("package:"):].strip()
        pkg, sep, rel = rest.partition(":")
        if not sep:
            pkg, rel = "cytoreg", rest
        try:
            base = resources.files(pkg.strip())
        except (ModuleNotFoundError, TypeError) as exc:
            raise DataError(f"data root {value!r}: package '{pkg}' is not installed ({exc}); install the plugin "
                            "that ships the data, or fix the package name") from None
        return Path(str(base)) / rel.strip().lstrip("/")
    return Path(value).expanduser()


class Source:
    """A data source. ``options`` are the task spec's ``data`` block (minus ``source``)."""

    options_schema: ClassVar[dict] = {"type": "object"}

    def __init__(self, options: dict[str, Any], task: Any):
        self.options = options
        self.task = task
        self.skipped: list[dict[str, str]] = []

    def samples(self) -> Iterator[Sample]:
        raise NotImplementedError

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append({"path": where, "reason": reason})

    # helpers -------------------------------------------------------------
    def require_root(self, key: str = "root") -> Path:
        root = self.options.get(key)
        task = self.task
        if not root:
            raise DataError(f"{task.path}: data.{key}: not set; give the dataset folder")
        path = resolve_path(root)
        if not path.exists():
            url = task.get("download_url") or task.get("homepage") or "(no download URL in the spec)"
            layout = task.get("layout")
            raise DataError(
                f"dataset for task '{task.name}' not found: looked for {path} "
                f"(set by data.{key} in {task.path}; built-in specs read it from $CYTOREG_DATA). "
                f"Download it from {url}"
                + (f" and arrange it as {layout}" if layout else "")
                + ", then point CYTOREG_DATA (or data.root) at it."
            )
        return path
