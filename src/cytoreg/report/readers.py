"""Reading a run folder back (``results.json``, ``samples.jsonl``, ``key.json``) for the
leaderboard, the HTML report and the review sheet. A truncated, hand-edited or foreign file is a
CytoregError naming the file, the line and the fix — never a JSONDecodeError or KeyError."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from cytoreg.errors import CytoregError

_REWRITE = "re-run `cytoreg eval` with the same --output to rewrite it (cached answers are reused)"


def _text(path: Path) -> str:
    from cytoreg.oserrors import describe_os_error

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CytoregError(describe_os_error(exc, path)) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CytoregError(f"{path}:{line}: not valid UTF-8 at byte offset {exc.start}; it was not written by "
                           f"cytoreg, or it is damaged — {_REWRITE}") from None


def read_json(path: Path, what: str = "file") -> Any:
    """Any JSON document written by cytoreg."""
    text = _text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (it ends early: was the run interrupted while writing?)" if exc.pos >= len(text.rstrip()) else ""
        raise CytoregError(f"{path}:{exc.lineno}: not valid JSON — {exc.msg} at column {exc.colno}{cut}; "
                           f"{_REWRITE}") from None
    except RecursionError:
        raise CytoregError(f"{path}: nested too deeply to be a cytoreg {what}; {_REWRITE}") from None


_NUM = {"type": ["number", "null"]}
_INT = {"type": ["integer", "null"]}
_OBJ = {"type": "object"}
_TEXT = {"type": "string"}
#: the shape of the results.json fields that the leaderboard, the HTML report and the explorer
#: read (not the full schema: large arrays are checked as arrays only, so a 1,000-label run is
#: checked in milliseconds; fields added later pass)
READER_SCHEMA = {
    "type": "object",
    "required": ["schema", "tasks", "evaluations"],
    "properties": {
        "config": _OBJ, "limit": _INT, "packages": _OBJ, "groups": _OBJ,
        "tasks": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "labels": {"type": "array", "items": _TEXT}, "sample_ids": {"type": ["object", "array"]}, "n_test": _INT,
            "baselines": _OBJ, "reference": {"type": ["object", "null"]}}}},
        "models": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "meta": _OBJ, "adapter": {"type": ["string", "null"]}}}},
        "evaluations": {"type": "array", "items": {
            "type": "object", "required": ["task", "model", "setting"],
            "properties": {
                "task": _TEXT, "model": _TEXT, "setting": _TEXT, "n": _INT, "tries": _INT, "errors": _INT,
                "metrics": {"type": "object", "properties": {
                    "confusion_matrix": {"type": "object", "required": ["labels", "matrix"], "properties": {
                        "labels": {"type": "array", "items": _TEXT}, "columns": {"type": "array", "items": _TEXT},
                        "matrix": {"type": "array", "items": {"type": "array"}}}},
                    "per_class": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                        "f1": _NUM, "precision": _NUM, "recall": _NUM, "support": _INT}}}}},
                "ci": {"type": "object", "additionalProperties": {"type": ["object", "null"], "properties": {
                    "low": _NUM, "high": _NUM}}},
                "folds": _OBJ,
                "requests": {"type": "object", "properties": {
                    "cached": _INT, "sent": _INT, "retries": _INT, "failed": _INT, "wall_s": _NUM,
                    "by_status": {"type": "object", "additionalProperties": _INT}}},
                "usage": {"type": "object", "additionalProperties": _INT},
                "probe": _OBJ}}},
        "comparisons": {"type": "array", "items": {"type": "object", "properties": {
            "task": _TEXT, "setting": _TEXT, "a": _TEXT, "b": _TEXT, "metric": _TEXT,
            "difference": _NUM, "low": _NUM, "high": _NUM, "p_value": _NUM}}},
    },
}


def read_results(path: Path) -> dict:
    """``results.json``, checked for the shape of the fields the readers use (a hand-edited or
    foreign file is one message naming the field, not an error deep inside a renderer)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    from cytoreg.registry.specs import json_path

    results = read_json(path, "results.json")
    if not isinstance(results, dict):
        raise CytoregError(f"{path}: holds a JSON {type(results).__name__}, not a results object; {_REWRITE}")
    if results.get("schema") != "cytoreg/results/v1":
        raise CytoregError(f"{path}: schema '{results.get('schema')}' is not cytoreg/results/v1")
    err = best_match(Draft202012Validator(READER_SCHEMA).iter_errors(results))
    if err is not None:
        where = json_path(err.absolute_path) if err.absolute_path else "(top level)"
        what = ("missing or not text" if err.validator == "type" and err.validator_value == "string"
                else "not a list" if err.validator_value == "array" else err.message)
        if err.validator == "required":
            what = err.message.replace("is a required property", "is required but missing")
        raise CytoregError(f"{path}: {where}: {what}; {_REWRITE}")
    return results


def iter_samples(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of every non-empty line of a ``samples.jsonl``, read line by line."""
    from cytoreg.oserrors import describe_os_error

    try:
        fh = path.open("rb")
    except OSError as exc:
        raise CytoregError(describe_os_error(exc, path)) from exc
    with fh:
        for i, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise CytoregError(f"{path}:{i}: not valid UTF-8 (byte {exc.start} of the line); {_REWRITE}") from None
            except json.JSONDecodeError as exc:
                last = not raw.endswith(b"\n")
                cut = " (the last line is cut short: was the run interrupted while writing?)" if last else ""
                raise CytoregError(f"{path}:{i}: not valid JSON — {exc.msg} at column {exc.colno}{cut}; "
                                   f"{_REWRITE}") from None
            except RecursionError:
                raise CytoregError(f"{path}:{i}: nested too deeply to be a sample row; {_REWRITE}") from None
            if not isinstance(row, dict):
                raise CytoregError(f"{path}:{i}: a JSON {type(row).__name__}, not a sample row; {_REWRITE}")
            problem = _row_problem(row)
            if problem:
                raise CytoregError(f"{path}:{i}: {problem}; {_REWRITE}")
            yield i, row


def _row_problem(row: dict) -> str | None:
    """The fields the reports dereference, by type (a hand-edited row, not one cytoreg wrote)."""
    for key in ("task", "model", "setting"):
        if not isinstance(row.get(key), str):
            return f"{key}: missing or not text"
    if not isinstance(row.get("id"), (str, int)) or isinstance(row.get("id"), bool):
        return "id: missing or not text"
    if not isinstance(row.get("image"), (str, type(None))):
        return "image: not a path"
    if not isinstance(row.get("try", 0), int):
        return "try: not a whole number"
    resp = row.get("response")
    if isinstance(resp, dict) and not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                          for v in resp.values()):  # null: a NaN probability
        return "response: scores that are not numbers"
    if not isinstance(resp, (str, dict, type(None))):
        return "response: neither text nor scores"
    return None


def check_samples(path: Path) -> None:
    """Read a ``samples.jsonl`` through once (if it exists), raising on the first damaged line."""
    if path.exists():
        for _ in iter_samples(path):
            pass
