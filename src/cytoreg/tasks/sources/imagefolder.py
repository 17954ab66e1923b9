"""One folder per class; the label comes from the folder, a file-name prefix or a regex."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from cytoreg.errors import DataError
from cytoreg.tasks.samples import ImageRef, Sample
from cytoreg.tasks.sources.base import IMAGE_SUFFIXES, Source, is_junk


class ImageFolderSource(Source):
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["root"],
        "properties": {
            "root": {"type": "string"},
            "label_from": {"enum": ["folder", "prefix", "regex"],
                           "description": "folder: first folder under root; prefix: file name before the first '_'"},
            "pattern": {"type": "string", "description": "regex with a (?P<label>...) group, matched on the relative path"},
            "label_map": {"type": "object", "additionalProperties": {"type": ["string", "null"]},
                          "description": "raw label -> task label; null excludes that raw label on purpose"},
            "unmapped": {"enum": ["error", "skip"]},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    }

    def _raw_label(self, rel: Path) -> str | None:
        how = self.options.get("label_from", "folder")
        if how == "folder":
            return rel.parts[0] if len(rel.parts) > 1 else None
        if how == "prefix":
            return rel.name.split("_", 1)[0] if "_" in rel.name else None
        m = re.search(self.options["pattern"], rel.as_posix())
        return m.group("label") if m else None

    def samples(self) -> Iterator[Sample]:
        root = self.require_root()
        exts = tuple(e.lower() for e in self.options.get("extensions", IMAGE_SUFFIXES))
        label_map = self.options.get("label_map")
        unmapped = self.options.get("unmapped", "error")
        if self.options.get("label_from") == "regex" and "pattern" not in self.options:
            raise DataError(f"{self.task.path}: data.pattern: needed when label_from is 'regex'")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_dir():
                continue
            if is_junk(rel):
                self.skip(rel.as_posix(), "system file")
                continue
            if path.suffix.lower() not in exts:
                self.skip(rel.as_posix(), f"not an image ({path.suffix or 'no extension'})")
                continue
            raw = self._raw_label(rel)
            if raw is None:
                self.skip(rel.as_posix(), "no label could be read from the path")
                continue
            if label_map is not None:
                if raw not in label_map:
                    if unmapped == "skip":
                        self.skip(rel.as_posix(), f"raw label '{raw}' not in data.label_map")
                        continue
                    raise DataError(
                        f"{root / rel}: raw label '{raw}' is not in data.label_map of {self.task.path}; "
                        f"add it (map it to null to exclude it) or set data.unmapped: skip")
                label = label_map[raw]
                if label is None:
                    self.skip(rel.as_posix(), f"raw label '{raw}' excluded by data.label_map")
                    continue
            else:
                label = raw
            yield Sample(id=rel.as_posix(), label=label, image=ImageRef(path=path),
                         meta={"raw_label": raw})
