"""CSV / TSV / JSON / JSONL manifests: one row per image with path and label columns.

Rows are streamed (``csv`` module, no pandas) so a 171k-row manifest costs only the ids.
"""
from __future__ import annotations

import ast
import csv
import json
from pathlib import Path
from typing import Any, Iterator

from cytoreg.errors import DataError
from cytoreg.tasks.samples import ImageRef, Sample
from cytoreg.tasks.sources.base import Source


def parse_list(cell: str | None, separator: str | None, where: str) -> list[str]:
    """A list cell: a Python/JSON literal ("['pleural effusion', 'cardiomegaly']") or ``a|b``."""
    text = (cell or "").strip()
    if separator is not None:
        return [x.strip() for x in text.split(separator) if x.strip()]
    if not text:
        return []
    try:
        value = ast.literal_eval(text)  # literals only: never evaluates code
    except (ValueError, SyntaxError):
        raise DataError(f"{where}: {text[:80]!r} is not a list literal; set label_from_list.separator for "
                        "separated values") from None
    if isinstance(value, str):
        return [value.strip()]
    return [str(x).strip() for x in value]


class ManifestSource(Source):
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["manifest"],
        "properties": {
            "root": {"type": "string", "description": "folder that relative image paths are resolved against"},
            "manifest": {"type": "string", "description": "path of the CSV/TSV/JSON/JSONL file (relative to root)"},
            "path_column": {"type": "string"},
            "label_column": {"type": "string"},
            "id_column": {"type": "string"},
            "path_template": {"type": "string", "description": "e.g. 'test/{image_name}' built from row columns"},
            "label_map": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
            "unmapped": {"enum": ["error", "skip"]},
            "onehot_columns": {"type": "array", "minItems": 2, "items": {"type": "string"},
                               "description": "label = the one column holding 1 (ISIC 2018: MEL,NV,BCC,...)"},
            "label_from_list": {
                "type": "object", "additionalProperties": False, "required": ["column", "value"],
                "description": "binary label from a multi-label column (PadChest's Labels: \"['a', 'b']\"): "
                               "'present' when value is in the row's list, else 'absent'",
                "properties": {"column": {"type": "string"}, "value": {"type": "string"},
                               "separator": {"type": "string", "description": "for 'a|b' lists instead of Python ones"}}},
            "search_dirs": {"type": "array", "items": {"type": "string"},
                            "description": "subfolders of root holding the images (AIROGS' 0/ ... 5/): the file "
                                           "name from path_template / path_column is looked up in them"},
            "filter": {"type": "object", "additionalProperties": {"type": ["string", "array"]},
                       "description": "keep rows whose column equals the value (or one of the values)"},
        },
    }

    def manifest_path(self) -> Path:
        m = Path(self.options["manifest"]).expanduser()
        if not m.is_absolute() and self.options.get("root"):
            m = self.require_root() / m
        if not m.exists():
            url = self.task.get("download_url") or "(no download URL in the spec)"
            raise DataError(f"manifest for task '{self.task.name}' not found: looked for {m} "
                            f"(data.manifest in {self.task.path}). Get the dataset from {url}.")
        return m

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        m = self.manifest_path()
        suffix = m.suffix.lower()
        with m.open(encoding="utf-8-sig", newline="") as fh:
            if suffix in (".csv", ".tsv"):
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                yield from enumerate(reader, start=2)
            elif suffix == ".jsonl":
                for n, line in enumerate(fh, start=1):
                    if line.strip():
                        yield n, json.loads(line)
            elif suffix == ".json":
                data = json.load(fh)
                if not isinstance(data, list):
                    raise DataError(f"{m}: a JSON manifest must be a list of objects")
                yield from enumerate(data, start=1)
            else:
                raise DataError(f"{m}: unsupported manifest format '{suffix}' (use .csv, .tsv, .json or .jsonl)")

    def samples(self) -> Iterator[Sample]:
        m = self.manifest_path()
        root = self.require_root() if self.options.get("root") else m.parent
        path_col = self.options.get("path_column", "path")
        label_col = self.options.get("label_column", "label")
        id_col = self.options.get("id_column")
        tmpl = self.options.get("path_template")
        label_map = self.options.get("label_map")
        unmapped = self.options.get("unmapped", "error")
        filters = {k: (v if isinstance(v, list) else [v]) for k, v in (self.options.get("filter") or {}).items()}
        onehot = self.options.get("onehot_columns")
        from_list = self.options.get("label_from_list")
        search = self._search_index(root) if self.options.get("search_dirs") else None
        for line, row in self.rows():
            where = f"{m}:{line}"
            if any(str(row.get(k, "")) not in vals for k, vals in filters.items()):
                continue
            try:
                rel = tmpl.format(**row) if tmpl else row[path_col]
                if from_list:
                    raw = "present" if from_list["value"] in parse_list(row[from_list["column"]], from_list.get(
                        "separator"), where) else "absent"
                else:
                    raw = self._onehot(row, onehot, where) if onehot else row[label_col]
            except KeyError as exc:
                raise DataError(f"{where}: column {exc} missing; columns are {', '.join(row)} "
                                f"(set data.path_column / data.label_column in {self.task.path})") from None
            raw = "" if raw is None else str(raw).strip()
            label: str | None = raw
            if label_map is not None:
                if raw not in label_map:
                    if unmapped == "skip":
                        self.skip(where, f"raw label '{raw}' not in data.label_map")
                        continue
                    raise DataError(f"{where}: label '{raw}' is not in data.label_map of {self.task.path}; "
                                    "add it (null excludes it) or set data.unmapped: skip")
                label = label_map[raw]
                if label is None:
                    self.skip(where, f"raw label '{raw}' excluded by data.label_map")
                    continue
            if not raw:
                self.skip(where, "empty label")
                continue
            path = Path(rel)
            if search is not None:
                path = search.get(path.name, root / path)
            elif not path.is_absolute():
                path = root / path
            sid = str(row[id_col]) if id_col else Path(rel).as_posix()
            meta = {k: v for k, v in row.items() if k not in (path_col, label_col, *(onehot or ()))}
            yield Sample(id=sid, label=label, image=ImageRef(path=path), meta=meta)

    def _search_index(self, root: Path) -> dict[str, Path]:
        """File name → path over the search folders (walked once per pass, no stat per row)."""
        index: dict[str, Path] = {}
        for sub in self.options["search_dirs"]:
            d = root / sub
            if not d.is_dir():
                raise DataError(f"task '{self.task.name}': folder {d} (data.search_dirs in {self.task.path}) does "
                                f"not exist; unpack the image archives there")
            for p in d.iterdir():
                index.setdefault(p.name, p)
        return index

    def _onehot(self, row: dict, columns: list[str], where: str) -> str:
        hot = []
        for c in columns:
            try:
                if float(row[c]) >= 0.5:
                    hot.append(c)
            except (TypeError, ValueError):
                raise DataError(f"{where}: column '{c}' holds {row[c]!r}, not 0 or 1 (data.onehot_columns in "
                                f"{self.task.path})") from None
        if len(hot) != 1:
            raise DataError(f"{where}: {len(hot)} of the one-hot columns {', '.join(columns)} are set "
                            f"({', '.join(hot) or 'none'}); exactly one must be")
        return hot[0]
