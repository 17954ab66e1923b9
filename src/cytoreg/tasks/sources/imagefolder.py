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
            "unmapped": {"enum": ["error", "skip"], "description": "a raw label missing from label_map: error, or "
                         "skip (dropped and counted); default: the task's on_unknown_label"},
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
        if self.options.get("label_from") == "regex" and "pattern" not in self.options:
            raise DataError(f"{self.task.path}: data.pattern: needed when label_from is 'regex'")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_dir():
                continue
            where = rel.as_posix()
            if is_junk(rel):
                self.skip(where, "system file", "system_file")
                continue
            if path.suffix.lower() not in exts:
                self.skip(where, f"not an image ({path.suffix or 'no extension'})", "not_an_image")
                continue
            raw = self._raw_label(rel)
            if raw is None:
                self.skip(where, "no label could be read from the path", "no_label")
                continue
            keep, label = self.map_label(raw, str(path))
            if keep:
                # a dangling symlink or an unreadable file stays a sample: the run's image check
                # makes it that sample's error record
                yield Sample(id=where, label=label, image=ImageRef(path=path), meta={"raw_label": raw},
                             where=str(path))
