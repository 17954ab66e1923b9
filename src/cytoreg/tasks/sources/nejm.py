"""NEJM Image Challenge cases in the public scraped JSON format (cx0/nejm-image-challenge):
a list of objects with ``image_id``, ``date`` (``apr-01-2010``), ``question``, ``option_A`` …
``option_E``, ``option_A_votes`` … (``"62%"``), ``correct_answer`` (a letter) and more. Images
are not in that file (NEJM's copyright): users keep their own copies in one folder, named
``IC<YYYYMMDD>.<ext>`` after the case date (the id NEJM's image URLs use) or ``<image_id>.<ext>``."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Iterator

from cytoreg.errors import DataError
from cytoreg.tasks.samples import ImageRef, Sample
from cytoreg.tasks.sources.base import IMAGE_SUFFIXES, Source

LETTERS = "ABCDE"


def parse_pct(value) -> float | None:
    """``"62%"`` → 62.0; empty → None."""
    if value in (None, ""):
        return None
    return float(str(value).strip().rstrip("%").replace(",", ""))


def parse_count(value) -> int | None:
    """``"165,436"`` / ``"85230."`` → int."""
    if value in (None, ""):
        return None
    return int(float(str(value).replace(",", "").strip().rstrip(".")))


class NEJMSource(Source):
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["root"],
        "properties": {
            "root": {"type": "string", "description": "folder holding the questions file and the images folder"},
            "questions": {"type": "string", "description": "JSON file (relative to root)"},
            "images": {"type": "string", "description": "image folder (relative to root)"},
            "exclude_ids": {"type": "array", "items": {"type": "integer"},
                            "description": "image_id values left out on purpose (reported as skipped)"},
        },
    }

    def samples(self) -> Iterator[Sample]:
        root = self.require_root()
        qpath = root / self.options.get("questions", "image_challenge_dataset.json")
        if not qpath.is_file():
            raise DataError(f"NEJM questions file not found: looked for {qpath} (data.questions in {self.task.path}). "
                            f"Bring your own copy in the cx0/nejm-image-challenge JSON format; see the task's layout.")
        images = root / self.options.get("images", "images")
        index: dict[str, Path] = {}
        if images.is_dir():
            for p in images.iterdir():
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
                    index[p.stem] = p
        try:
            cases = json.loads(qpath.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{qpath}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}, byte offset "
                            f"{exc.pos}); fix the file") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{qpath}: byte offset {exc.start} is not valid UTF-8; save the file as UTF-8") from None
        if not isinstance(cases, list):
            raise DataError(f"{qpath}: expected a list of case objects")
        exclude = set(self.options.get("exclude_ids") or [])
        for n, c in enumerate(cases):
            where = f"{qpath}[{n}]"
            try:
                cid = int(c["image_id"])
                date = datetime.strptime(c["date"].strip().lower(), "%b-%d-%Y")
                options = [str(c[f"option_{x}"]).strip() for x in LETTERS]
                correct = str(c["correct_answer"]).strip().upper()
            except (KeyError, ValueError, TypeError) as exc:
                raise DataError(f"{where}: {type(exc).__name__}: {exc}; each case needs image_id, date "
                                "(mon-dd-yyyy), question, option_A..option_E and correct_answer") from None
            if cid in exclude:
                self.skip(where, f"image_id {cid} excluded by data.exclude_ids", "excluded_id")
                continue
            if correct not in LETTERS:
                raise DataError(f"{where}: correct_answer '{correct}' is not one of A-E")
            ic = f"IC{date:%Y%m%d}"
            path = index.get(ic) or index.get(str(cid))
            if path is None:
                self.skip(where, f"no image {ic}.* or {cid}.* in {images}", "missing_file")
                continue
            votes = {x: parse_pct(c.get(f"option_{x}_votes")) for x in LETTERS}
            yield Sample(id=ic, label=str(LETTERS.index(correct) + 1), image=ImageRef(path=path), where=where, meta={
                "image_id": cid, "date_iso": f"{date:%Y-%m-%d}", "question": str(c.get("question", "")).strip(),
                "options": options, "correct_letter": correct, "human_correct_pct": votes[correct],
                "votes_pct": votes, "total_votes": parse_count(c.get("total_number_votes")),
            })
