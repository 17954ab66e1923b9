"""Where every row of a dataset went: kept, or dropped for a named reason.

A :class:`Ledger` is filled during the first pass over a task's data (the sources record what
they drop; :func:`accounted` drops rows whose label is not in the task's label set and
duplicate ids), then ``results.json`` reports, per task, the rows seen = kept + dropped, the
kept rows' split (sampled / not sampled) and the sampled images that could not be read. Nothing
is dropped silently: an unknown label is an error unless the spec says ``on_unknown_label:
skip``, and a duplicate id with two labels is always an error naming both rows."""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Iterator

from cytoreg.errors import DataError
from cytoreg.tasks.samples import Sample

#: reason code → what it means (codes are stable; plugins may add their own)
REASONS = {
    "not_in_label_set": "label not in the task's label set (on_unknown_label: skip)",
    "excluded_by_label_map": "raw label mapped to null in data.label_map, on purpose",
    "not_in_label_map": "raw label not in data.label_map (data.unmapped: skip)",
    "duplicate_id": "same id and label as an earlier row",
    "missing_file": "image file not found",
    "unreadable": "image could not be read",
    "excluded_id": "id excluded by the spec, on purpose",
    "filtered": "row not selected by data.filter",
    "empty_label": "empty label cell",
    "no_label": "no label could be read from the path",
    "not_an_image": "file extension is not an image's",
    "system_file": "system file (.DS_Store, __MACOSX, ._*)",
    "no_target": "the row has no valid target for this task",
}
EXAMPLES = 5


def _norm(text: str) -> str:
    """Case and spacing (spaces, ``_``, ``-``) do not count."""
    return re.sub(r"[\s_\-]+", " ", text.strip().lower())


def _same(a: str, b: str) -> bool:
    """Equal up to case, spacing and a plural ``s`` / ``es`` on either side."""
    a, b = _norm(a), _norm(b)
    return a == b or a in (b + "s", b + "es") or b in (a + "s", a + "es")


def suggest_label(raw: str, labels: Iterable[str]) -> str | None:
    """The one task label that ``raw`` matches up to case, spacing and plural, if any."""
    hits = [lab for lab in labels if raw and lab != raw and _same(raw, lab)]
    return hits[0] if len(hits) == 1 else None


def _yaml_key(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z][\w .-]*", value) and not value.endswith(" ") else repr(value)


class Ledger:
    """Counts and a few examples of every row's fate, per reason."""

    def __init__(self) -> None:
        self.kept = 0
        self.dropped: dict[str, dict[str, Any]] = {}
        self.first_where: dict[tuple[str, str], str] = {}  # (code, value) → first row

    @property
    def seen(self) -> int:
        return self.kept + sum(d["count"] for d in self.dropped.values())

    def drop(self, code: str, where: str, reason: str, value: str | None = None) -> None:
        slot = self.dropped.setdefault(code, {"count": 0, "description": REASONS.get(code, reason),
                                              "examples": []})
        slot["count"] += 1
        if len(slot["examples"]) < EXAMPLES:
            slot["examples"].append({"where": where, "reason": reason})
        if value is not None:
            self.first_where.setdefault((code, value), where)
            values = slot.setdefault("values", {})
            values[value] = values.get(value, 0) + 1

    def suggestions(self, labels: Iterable[str]) -> dict[str, str]:
        """Raw labels dropped as unknown that differ from a task label only in case, spacing or
        plural → that label (each a ``data.label_map`` line to add)."""
        labels = list(labels)
        out = {}
        for code in ("not_in_label_set", "not_in_label_map"):
            for raw in (self.dropped.get(code) or {}).get("values", {}):
                hit = suggest_label(raw, labels)
                if hit is not None:
                    out[raw] = hit
        return out

    def to_json(self, labels: Iterable[str], split: Any = None, image_infos: dict | None = None) -> dict:
        labels = list(labels)
        out: dict[str, Any] = {"rows_seen": self.seen, "kept": self.kept,
                               "dropped_total": sum(d["count"] for d in self.dropped.values()),
                               "dropped": {k: dict(v) for k, v in sorted(self.dropped.items())}}
        sugg = self.suggestions(labels)
        if sugg:
            out["suggested_label_map"] = [f"{_yaml_key(k)}: {v}" for k, v in sugg.items()]
        if split is not None:
            ids = split.ids()
            sampled = {k: len(v) for k, v in ids.items()}
            out["sampled"] = sampled
            out["not_sampled"] = self.kept - len({i for v in ids.values() for i in v})
        if image_infos is not None:
            bad = [(sid, info) for sid, info in image_infos.items() if info.error]
            by: dict[str, int] = {}
            for _, info in bad:
                by[info.problem] = by.get(info.problem, 0) + 1
            out["images_checked"] = len(image_infos)
            out["image_errors"] = {"count": len(bad), "by_problem": dict(sorted(by.items())),
                                   "examples": [{"id": sid, "error": info.error} for sid, info in bad[:20]],
                                   "fate": "an error record in every evaluation; the run goes on"}
        return out


def unknown_label_error(spec: Any, ledger: Ledger, labels: list[str]) -> DataError:
    slot = ledger.dropped["not_in_label_set"]
    sugg = ledger.suggestions(labels)
    lines = [f"task '{spec.name}': {slot['count']} row(s) have a label that is not one of the task's labels "
             f"({', '.join(labels)}):"]
    for raw, n in slot.get("values", {}).items():
        lines.append(f"  '{raw}': {n} row(s), e.g. {ledger.first_where[('not_in_label_set', raw)]}")
    if sugg:
        lines.append(f"Add to data.label_map in {spec.path}:")
        lines += [f"    {_yaml_key(k)}: {v}" for k, v in sugg.items()]
    lines.append(f"Map each raw label to a task label (or to null to exclude it on purpose) in data.label_map, "
                 f"or set on_unknown_label: skip in {spec.path} to drop these rows and report them.")
    return DataError("\n".join(lines))


def accounted(samples: Iterable[Sample], labels: list[str], policy: str, ledger: Ledger, spec: Any,
              rescan: Callable[[], Iterable[Sample]]) -> Iterator[Sample]:
    """The rows of the first pass whose label is in ``labels``, each id once. Unknown labels are
    recorded (and, with ``policy`` ``error``, raised together at the end of the pass); an id seen
    again with the same label is counted, with another label it is an error naming both rows."""
    allowed = set(labels)
    first: dict[str, str] = {}
    for s in samples:
        if s.label not in allowed:
            ledger.drop("not_in_label_set", s.origin, f"label '{s.label}' is not one of the task's labels",
                        value=str(s.label))
            continue
        prev = first.get(s.id)
        if prev is not None:
            if prev != s.label:
                earlier = next((t for t in rescan() if t.id == s.id), None)
                raise DataError(
                    f"task '{spec.name}': id '{s.id}' appears twice with different labels: "
                    f"{earlier.origin if earlier else '(an earlier row)'} says '{prev}', {s.origin} says "
                    f"'{s.label}'. Fix the wrong row, or give the rows distinct ids (data.id_column in {spec.path}).")
            ledger.drop("duplicate_id", s.origin, f"id '{s.id}' repeats an earlier row (same label '{s.label}')")
            continue
        first[s.id] = s.label
        ledger.kept += 1
        yield s
    if policy != "skip" and "not_in_label_set" in ledger.dropped:
        raise unknown_label_error(spec, ledger, labels)
