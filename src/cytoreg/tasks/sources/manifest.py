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


def _item_line(text: str, index: int) -> int:
    """Line of the ``index``-th item of a top-level JSON list (for messages only)."""
    dec = json.JSONDecoder()
    pos = text.index("[") + 1
    for _ in range(index + 1):
        while text[pos] in " \t\r\n,":
            pos += 1
        start = pos
        _, pos = dec.raw_decode(text, pos)
    return text.count("\n", 0, start) + 1


def _preview(value: Any) -> str:
    """The first 60 characters of a JSON value, for messages (however deeply it nests)."""
    try:
        return json.dumps(value)[:60]
    except RecursionError:
        return "deeply nested"


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
            "unmapped": {"enum": ["error", "skip"], "description": "a raw label missing from label_map: error, or "
                         "skip (dropped and counted); default: the task's on_unknown_label"},
            "encoding": {"type": "string", "description": "text encoding of the manifest (default utf-8; "
                                                          "e.g. latin-1 for files saved by old Excel)"},
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
            "missing_files": {"enum": ["error_record", "drop"],
                              "description": "a row whose image file does not exist: error_record (default: it "
                                             "is sampled and becomes that sample's error) or drop (each path is "
                                             "checked up front, a stat, and the row dropped and counted as "
                                             "missing_file with its line; folder / CSV tasks use it)"},
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
        """(line number, row) of the manifest; a malformed file is one error naming the file, the
        line (or byte offset) and the fix, never a parser traceback."""
        m = self.manifest_path()
        suffix = m.suffix.lower()
        if suffix not in (".csv", ".tsv", ".json", ".jsonl"):
            raise DataError(f"{m}: unsupported manifest format '{suffix}' (use .csv, .tsv, .json or .jsonl)")
        encoding = self.options.get("encoding", "utf-8-sig")
        try:
            with m.open(encoding=encoding, newline="") as fh:
                if suffix in (".csv", ".tsv"):
                    yield from self._csv_rows(m, fh, "\t" if suffix == ".tsv" else ",")
                elif suffix == ".jsonl":
                    yield from self._jsonl_rows(m, fh)
                else:
                    yield from self._json_rows(m, fh.read())
        except UnicodeDecodeError as exc:
            raise self._encoding_error(m, encoding, exc) from None
        except LookupError:
            raise DataError(f"{m}: data.encoding '{encoding}' is not a known text encoding (e.g. utf-8, latin-1, "
                            f"cp1252) in {self.task.path}") from None

    def _encoding_error(self, m: Path, encoding: str, exc: UnicodeDecodeError) -> DataError:
        raw = m.read_bytes()
        try:  # the offset in the whole file (the exception's is relative to a read chunk)
            raw.decode(encoding)
            pos = exc.start
        except UnicodeDecodeError as whole:
            pos = whole.start
        line = raw.count(b"\n", 0, pos) + 1
        name = "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8-sig", "utf-8", "utf8") else encoding
        return DataError(f"{m}:{line}: byte {raw[pos:pos + 1]!r} at offset {pos} is not valid {name} text. "
                         f"Save the file as UTF-8, or set data.encoding (e.g. latin-1 or cp1252) in {self.task.path}.")

    def _csv_rows(self, m: Path, fh, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            for row in reader:
                line = reader.line_num
                if None in row or any(v is None for v in row.values()):
                    n = len(reader.fieldnames or [])
                    got = n - sum(v is None for v in row.values()) + len(row.get(None) or [])
                    raise DataError(f"{m}:{line}: {got} fields where the header has {n}; fix the row (a comma in an "
                                    "unquoted value?) or remove it")
                yield line, row
        except csv.Error as exc:
            raise DataError(f"{m}:{reader.line_num}: not valid {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}; "
                            "fix or remove that line") from None

    def _jsonl_rows(self, m: Path, fh) -> Iterator[tuple[int, dict[str, Any]]]:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                raise DataError(f"{m}:{n}: not valid JSON ({exc.msg}, column {exc.colno}); each line of a .jsonl "
                                "manifest is one JSON object: fix or remove that line") from None
            except RecursionError:
                raise DataError(f"{m}:{n}: JSON nested too deeply to read; a row is one flat object "
                                '{"path": ..., "label": ...}: fix or remove that line') from None
            if not isinstance(row, dict):
                raise DataError(f"{m}:{n}: a {type(row).__name__} where a JSON object (one row: "
                                '{"path": ..., "label": ...}) is expected; fix or remove that line')
            yield n, row

    def _json_rows(self, m: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{m}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}, byte offset "
                            f"{exc.pos}); fix the file") from None
        except RecursionError:
            raise DataError(f"{m}: JSON nested too deeply to read; a JSON manifest is a list of flat objects "
                            '{"path": ..., "label": ...}: fix the file') from None
        if not isinstance(data, list):
            raise DataError(f"{m}: a JSON manifest must be a list of objects, not a {type(data).__name__}")
        for k, row in enumerate(data):
            if not isinstance(row, dict):
                line = _item_line(text, k)
                raise DataError(f"{m}:{line}: item {k} of the list is a {type(row).__name__} ({_preview(row)}), "
                                'not an object ({"path": ..., "label": ...}); fix or remove it')
            yield k + 1, row

    def samples(self) -> Iterator[Sample]:
        m = self.manifest_path()
        root = self.require_root() if self.options.get("root") else m.parent
        path_col = self.options.get("path_column", "path")
        label_col = self.options.get("label_column", "label")
        id_col = self.options.get("id_column")
        tmpl = self.options.get("path_template")
        filters = {k: (v if isinstance(v, list) else [v]) for k, v in (self.options.get("filter") or {}).items()}
        onehot = self.options.get("onehot_columns")
        from_list = self.options.get("label_from_list")
        search = self._search_index(root) if self.options.get("search_dirs") else None
        drop_missing = self.options.get("missing_files") == "drop"
        for line, row in self.rows():
            where = f"{m}:{line}"
            if any(str(row.get(k, "")) not in vals for k, vals in filters.items()):
                self.skip(where, "not selected by data.filter", "filtered", listed=False)
                continue
            try:
                rel = tmpl.format(**row) if tmpl else row[path_col]
                if from_list:
                    raw = "present" if from_list["value"] in parse_list(row[from_list["column"]], from_list.get(
                        "separator"), where) else "absent"
                else:
                    raw = self._onehot(row, onehot, where) if onehot else row[label_col]
                sid = str(row[id_col]) if id_col else None
            except KeyError as exc:
                raise DataError(f"{where}: column {exc} missing; columns are {', '.join(row)} "
                                f"(set data.path_column / data.label_column in {self.task.path})") from None
            raw = "" if raw is None else str(raw).strip()
            if not raw and "" not in (self.options.get("label_map") or {}):
                self.skip(where, "empty label", "empty_label")
                continue
            keep, label = self.map_label(raw, where)
            if not keep:
                continue
            rel = "" if rel is None else str(rel).strip()
            if not rel:
                raise DataError(f"{where}: empty image path (column '{path_col}'); fix or remove the row")
            path = Path(rel)
            if search is not None:
                path = search.get(path.name, root / path)
            elif not path.is_absolute():
                path = root / path
            sid = sid if sid is not None else Path(rel).as_posix()
            if drop_missing and not path.is_file():  # a stat, no decode: never sampled, never a few-shot example
                self.skip(where, f"line {line}: {rel} not found", "missing_file")
                continue
            meta = {k: v for k, v in row.items() if k not in (path_col, label_col, *(onehot or ()))}
            # a missing file stays a sample: the run's image check makes it that sample's error record
            yield Sample(id=sid, label=label, image=ImageRef(path=path), meta=meta, where=where)

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
