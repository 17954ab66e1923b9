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


def read_results(path: Path) -> dict:
    """``results.json``, checked for the fields the readers use."""
    results = read_json(path, "results.json")
    if not isinstance(results, dict):
        raise CytoregError(f"{path}: holds a JSON {type(results).__name__}, not a results object; {_REWRITE}")
    if results.get("schema") != "cytoreg/results/v1":
        raise CytoregError(f"{path}: schema '{results.get('schema')}' is not cytoreg/results/v1")
    if not isinstance(results.get("tasks"), dict):
        raise CytoregError(f"{path}: tasks: missing or not an object; {_REWRITE}")
    evals = results.get("evaluations")
    if not isinstance(evals, list):
        raise CytoregError(f"{path}: evaluations: missing or not a list; {_REWRITE}")
    for i, ev in enumerate(evals):
        if not isinstance(ev, dict):
            raise CytoregError(f"{path}: evaluations[{i}]: not an object; {_REWRITE}")
        for key in ("task", "model", "setting"):
            if not isinstance(ev.get(key), str):
                raise CytoregError(f"{path}: evaluations[{i}].{key}: missing or not text; {_REWRITE}")
        if not isinstance(ev.get("metrics", {}), dict):
            raise CytoregError(f"{path}: evaluations[{i}].metrics: not an object; {_REWRITE}")
    for name, info in results["tasks"].items():
        if not isinstance(info, dict):
            raise CytoregError(f"{path}: tasks.{name}: not an object; {_REWRITE}")
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
            yield i, row


def check_samples(path: Path) -> None:
    """Read a ``samples.jsonl`` through once (if it exists), raising on the first damaged line."""
    if path.exists():
        for _ in iter_samples(path):
            pass
