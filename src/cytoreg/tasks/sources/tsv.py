"""VLMEvalKit TSV: ``index``, base64 ``image``, ``question``, options ``A``..., ``answer``."""
from __future__ import annotations

import base64
import binascii
import csv
import string
import sys
from pathlib import Path
from typing import Iterator

from cytoreg.errors import DataError
from cytoreg.tasks.samples import ImageRef, Sample
from cytoreg.tasks.sources.base import Source


class VLMEvalTSVSource(Source):
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["file"],
        "properties": {
            "root": {"type": "string"},
            "file": {"type": "string"},
            "label_from": {"enum": ["answer_letter", "answer_text"],
                           "description": "label = the answer letter, or the text of the answer option"},
        },
    }

    def samples(self) -> Iterator[Sample]:
        f = Path(self.options["file"]).expanduser()
        if not f.is_absolute() and self.options.get("root"):
            f = self.require_root() / f
        if not f.exists():
            raise DataError(f"TSV for task '{self.task.name}' not found: looked for {f} (data.file in {self.task.path})")
        csv.field_size_limit(sys.maxsize)
        mode = self.options.get("label_from", "answer_letter")
        try:
            yield from self._rows(f, mode)
        except UnicodeDecodeError as exc:
            raise DataError(f"{f}: byte offset {exc.start} (of a read chunk) is not valid UTF-8; VLMEvalKit TSVs are "
                            "UTF-8: save the file as UTF-8") from None
        except csv.Error as exc:
            raise DataError(f"{f}: not valid TSV: {exc}; fix or remove that line") from None

    def _rows(self, f: Path, mode: str) -> Iterator[Sample]:
        with f.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            for line, row in enumerate(reader, start=2):
                where = f"{f}:{line}"
                for col in ("index", "image", "question", "answer"):
                    if col not in row:
                        raise DataError(f"{where}: column '{col}' missing (VLMEvalKit TSV needs index, image, question, answer)")
                options = {c: row[c] for c in string.ascii_uppercase if row.get(c) not in (None, "")}
                try:
                    raw = base64.b64decode(row["image"], validate=True)
                except (binascii.Error, ValueError):
                    self.skip(where, "image column is not valid base64", "unreadable")
                    continue
                ans = row["answer"].strip()
                label = options.get(ans, ans) if mode == "answer_text" else ans
                yield Sample(id=str(row["index"]), label=label, where=where,
                             image=ImageRef(loader=lambda d=raw: d, description=f"{where} image"),
                             meta={"question": row["question"], "options": options,
                                   "category": row.get("category")})
