"""Base class for data sources."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterator

from cytoreg.errors import DataError
from cytoreg.tasks.accounting import Ledger, suggest_label
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
        #: counts and examples of dropped rows by reason (results.json: tasks.<name>.data)
        self.ledger = Ledger()
        #: what an unknown label does: the task's ``on_unknown_label`` (error unless the spec says skip)
        self.on_unknown: str = (task.get("on_unknown_label") if task is not None else None) or "error"

    def samples(self) -> Iterator[Sample]:
        raise NotImplementedError

    def skip(self, where: str, reason: str, code: str = "other", value: str | None = None,
             listed: bool = True) -> None:
        """Record a dropped row; ``code`` is its reason in :data:`cytoreg.tasks.accounting.REASONS`.
        ``listed=False`` counts it without keeping it in ``skipped`` (bulk reasons such as a filter)."""
        if listed:
            self.skipped.append({"path": where, "reason": reason})
        self.ledger.drop(code, where, reason, value)

    def map_label(self, raw: str, where: str) -> tuple[bool, str | None]:
        """Apply ``data.label_map``: (keep?, label). A raw label mapped to null is dropped on
        purpose; one missing from the map is an error naming the row (with the one-line fix when it
        differs from a task label only in case, spacing or plural), or dropped and counted when
        ``data.unmapped`` (default: the task's ``on_unknown_label``) is ``skip``."""
        label_map = self.options.get("label_map")
        if label_map is None:
            return True, raw
        if raw not in label_map:
            if self.options.get("unmapped", self.on_unknown) == "skip":
                self.skip(where, f"raw label '{raw}' not in data.label_map", "not_in_label_map", raw)
                return False, None
            hit = suggest_label(raw, self.task.get("labels") or [])
            fix = f"add '{raw}: {hit}' to it" if hit else "add it (map it to null to exclude it)"
            raise DataError(f"{where}: raw label '{raw}' is not in data.label_map of {self.task.path}; {fix}, "
                            "or set on_unknown_label: skip (or data.unmapped: skip) to drop and count such rows")
        label = label_map[raw]
        if label is None:
            self.skip(where, f"raw label '{raw}' excluded by data.label_map", "excluded_by_label_map", raw)
            return False, None
        return True, label

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
                + (f" `cytoreg data fetch {task.name}` does this for you." if (task.get("download") or {}).get("files")
                   else f" `cytoreg data fetch {task.name}` prints the steps." if task.get("download") else "")
            )
        return path
