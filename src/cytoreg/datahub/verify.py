"""``cytoreg data verify``: a dataset on disk against its spec's published numbers.

Counts come from the task's own data source (so what is verified is what ``cytoreg eval`` would
read): per label against ``reference.published_counts``, per split against
``reference.published_split_sizes`` (every split is counted: ``npz`` files hold them all, other
sources name theirs in ``download.splits``), files
the source could not use are listed as extra, and files with a published checksum are hashed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytoreg.datahub.fetch import file_digest
from cytoreg.datahub.spec import read_download
from cytoreg.errors import DataError

EXCLUDED = "excluded by data.label_map"
MISSING = "listed in the data, file not found"


@dataclass
class ClassCount:
    label: str
    expected: int | None
    found: int
    unpublished: bool = False  # the spec publishes no per-label counts: nothing to compare with

    @property
    def status(self) -> str:
        if self.unpublished:
            return "ok"
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
    missing_files: list[str] = field(default_factory=list)  # listed by a manifest, absent on disk
    excluded: int = 0  # files left out on purpose (label_map: null)
    checksums: list[tuple[str, str]] = field(default_factory=list)  # file, "ok" | "MISMATCH ..." | "absent"
    problems: list[str] = field(default_factory=list)  # splits that could not be read at all
    note: str = ""

    @property
    def ok(self) -> bool:
        return (not self.problems and not self.missing_files and all(c.status == "ok" for c in self.classes) and not self.extra_files
                and all(e is None or e == n for _, e, n in self.splits)
                and all(s == "ok" for _, s in self.checksums))


def _count(spec: Any, data: dict) -> tuple[Counter, list[dict]]:
    """Labels of the rows whose image is there; rows naming an absent file come back as skipped
    with reason MISSING (a manifest lists them, the folder lacks them)."""
    from cytoreg.registry.builtins import SOURCES

    data = dict(data)
    source = SOURCES.get(data.pop("source"))(data, spec)
    counts: Counter = Counter()
    missing = []
    for s in source.samples():
        path = s.image.path if s.image is not None else None
        if path is not None and not Path(path).exists():
            missing.append({"path": str(path), "reason": MISSING})
        else:
            counts[s.label] += 1
    return counts, source.skipped + missing


def verify(spec: Any) -> Report:
    """Count the task's data; raises the source's DataError when the dataset is not there at all."""
    ref = spec.get("reference") or {}
    published: dict[str, int] = ref.get("published_counts") or {}
    split_sizes: dict[str, int] = ref.get("published_split_sizes") or {}
    rep = Report(task=spec.name)
    data = dict(spec.get("data"))
    totals: Counter = Counter()
    skipped: list[dict] = []
    splits = (spec.get("download") or {}).get("splits")
    if not splits and data["source"] == "npz":  # one file holds every split
        splits = {split: {"split": split} for split in ("train", "val", "test")}
    if splits:  # published counts cover every split: count them all
        errors: list[DataError] = []
        for split, override in splits.items():
            try:
                c, sk = _count(spec, {**data, **override})
            except DataError as exc:  # one split absent: say so, count the others
                rep.problems.append(f"split {split}: {exc}")
                errors.append(exc)
                c, sk = Counter(), []
            rep.splits.append((split, split_sizes.get(split), sum(c.values())))
            totals += c
            skipped += sk
        if len(errors) == len(splits):  # nothing of it is there (or readable): one error, not a table of zeros
            if len({str(e) for e in errors}) == 1:
                raise errors[0]  # one file holds every split
            raise DataError(f"{errors[0]} (and {len(errors) - 1} other split(s) of '{spec.name}' are not there either)")
    else:
        totals, skipped = _count(spec, data)
    for lab in list(published) + sorted(set(totals) - set(published)):
        rep.classes.append(ClassCount(lab, published.get(lab), totals.get(lab, 0), unpublished=not published))
    for s in skipped:
        if EXCLUDED in s["reason"]:
            rep.excluded += 1
        elif s["reason"] == MISSING:
            rep.missing_files.append(s["path"])
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
        rep.note = (f"{spec.path} publishes no counts (reference.published_counts), so what was found is listed "
                    "and nothing is compared")
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
