"""``cytoreg data verify``: a dataset on disk against its spec's published numbers.

Counts come from the task's own data source (so what is verified is what ``cytoreg eval`` would
read): per label against ``reference.published_counts``, per split against
``reference.published_split_sizes`` (``npz`` files hold every split, and all are counted), files
the source could not use are listed as extra, and files with a published checksum are hashed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytoreg.datahub.fetch import file_digest
from cytoreg.datahub.spec import read_download

EXCLUDED = "excluded by data.label_map"


@dataclass
class ClassCount:
    label: str
    expected: int | None
    found: int

    @property
    def status(self) -> str:
        if self.expected is None:
            return "extra label" if self.found else "ok"
        if self.found == self.expected:
            return "ok"
        return f"missing {self.expected - self.found}" if self.found < self.expected else \
            f"extra {self.found - self.expected}"


@dataclass
class Report:
    task: str
    classes: list[ClassCount] = field(default_factory=list)
    splits: list[tuple[str, int | None, int]] = field(default_factory=list)  # split, expected, found
    extra_files: list[tuple[str, str]] = field(default_factory=list)  # path, why the source left it out
    excluded: int = 0  # files left out on purpose (label_map: null)
    checksums: list[tuple[str, str]] = field(default_factory=list)  # file, "ok" | "MISMATCH ..." | "absent"
    note: str = ""

    @property
    def ok(self) -> bool:
        return (all(c.status == "ok" for c in self.classes) and not self.extra_files
                and all(e is None or e == n for _, e, n in self.splits)
                and all(s == "ok" for _, s in self.checksums))


def _count(spec: Any, data: dict) -> tuple[Counter, list[dict]]:
    from cytoreg.registry.builtins import SOURCES

    data = dict(data)
    source = SOURCES.get(data.pop("source"))(data, spec)
    counts = Counter(s.label for s in source.samples())
    return counts, source.skipped


def verify(spec: Any) -> Report:
    """Count the task's data; raises the source's DataError when the dataset is not there at all."""
    ref = spec.get("reference") or {}
    published: dict[str, int] = ref.get("published_counts") or {}
    split_sizes: dict[str, int] = ref.get("published_split_sizes") or {}
    rep = Report(task=spec.name)
    data = dict(spec.get("data"))
    totals: Counter = Counter()
    skipped: list[dict] = []
    if data["source"] == "npz":  # one file holds every split: count them all
        for split in ("train", "val", "test"):
            c, sk = _count(spec, dict(data, split=split))
            rep.splits.append((split, split_sizes.get(split), sum(c.values())))
            totals += c
            skipped += sk
    else:
        totals, skipped = _count(spec, data)
    for lab in list(published) + sorted(set(totals) - set(published)):
        rep.classes.append(ClassCount(lab, published.get(lab), totals.get(lab, 0)))
    for s in skipped:
        if s["reason"].startswith(EXCLUDED) or EXCLUDED in s["reason"]:
            rep.excluded += 1
        else:
            rep.extra_files.append((s["path"], s["reason"]))
    dl = read_download(spec)
    if dl is not None and dl.dest is not None:
        for f in dl.files:
            if f.extract or not f.algo:
                continue
            path = dl.dest / f.name
            if not path.exists():
                rep.checksums.append((str(path), "absent"))
                continue
            got = file_digest(path, f.algo)
            rep.checksums.append((str(path), "ok" if got == f.digest else
                                  f"MISMATCH: {f.algo.upper()} {got}, published {f.digest}"))
    if not published and not split_sizes:
        rep.note = f"{spec.path}: reference.published_counts is not given, so only what was found is listed"
    return rep


def present(spec: Any) -> tuple[bool | None, str]:
    """(is the dataset on disk, the path looked at). None: the spec names no local path."""
    from cytoreg.tasks.sources.base import resolve_path

    data = spec.get("data") or {}
    root = data.get("root")
    rel = data.get("file") or data.get("manifest") or data.get("path")
    if root is None and rel is None:
        return None, ""
    path = resolve_path(root) if root else Path(rel).expanduser()
    if root and rel and not Path(rel).is_absolute():
        path = path / rel
    return path.exists(), str(path)
