"""Seeded per-class sampling, as in seed A's ``prepare_dataset.py``.

Splits are drawn in ``order`` (default test → fewshot → train → val). For each split and class,
the rows not yet taken (in sorted-id order, so the file system's listing order never matters)
are permuted with ``RandomState(seed)`` — what ``DataFrame.sample(frac=1, random_state=seed)``
does — and the first n are kept; fewer than n means all that remain. Splits are disjoint by
construction, and growing n only appends (nested subsets for label-efficiency curves).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from cytoreg.tasks.samples import Sample

DEFAULT_ORDER = ("test", "fewshot", "train", "val")


@dataclass
class Split:
    test: list[Sample] = field(default_factory=list)
    fewshot: list[Sample] = field(default_factory=list)
    train: list[Sample] = field(default_factory=list)
    val: list[Sample] = field(default_factory=list)
    shortfalls: list[dict] = field(default_factory=list)  # classes with fewer than requested

    def ids(self) -> dict[str, list[str]]:
        return {k: [s.id for s in getattr(self, k)] for k in DEFAULT_ORDER}


def permute(n: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).permutation(n)


def draw(samples: Iterable[Sample], labels: list[str], sampling: dict) -> Split:
    seed = int(sampling.get("seed", 42))
    want = {
        "test": sampling.get("test_per_class", 50),
        "fewshot": sampling.get("fewshot_per_class", 0),
        "train": sampling.get("train_per_class", 0),
        "val": sampling.get("val_per_class", 0),
    }
    order = list(sampling.get("order", DEFAULT_ORDER))
    order += [k for k in DEFAULT_ORDER if k not in order]
    by_class: dict[str, list[Sample]] = {lab: [] for lab in labels}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    out = Split()
    for lab in labels:
        remaining = sorted(by_class.get(lab, []), key=lambda s: s.id)
        for split in order:
            n = want[split]
            if n == 0:
                continue
            perm = [remaining[i] for i in permute(len(remaining), seed)]
            take = perm if n == "all" else perm[:n]
            if n != "all" and len(take) < n:
                out.shortfalls.append({"split": split, "label": lab, "requested": n, "available": len(take)})
            getattr(out, split).extend(take)
            taken = {s.id for s in take}
            remaining = [s for s in remaining if s.id not in taken]
    return out
