"""Seeded per-class sampling, as in seed A's ``prepare_dataset.py``.

Splits are drawn in ``order`` (default test → fewshot → train → val). For each split and class,
the rows not yet taken (in sorted-id order, so the file system's listing order never matters)
are permuted with ``RandomState(seed)`` — what ``DataFrame.sample(frac=1, random_state=seed)``
does — and the first n are kept; fewer than n means all that remain. Splits are disjoint by
construction, and growing n only appends (nested subsets for label-efficiency curves).

Given a function that streams the samples, drawing takes two passes: the first keeps only
(id, label) pairs, the second keeps the chosen samples. Memory then grows with the id list
only, not with each row's path and metadata (a 171k-image manifest stays small).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

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


def draw(samples: Iterable[Sample] | Callable[[], Iterable[Sample]], labels: list[str], sampling: dict) -> Split:
    """Draw the splits; ``samples`` is an iterable, or a function returning a fresh stream (two passes)."""
    if callable(samples):
        stream = samples
    else:
        items = list(samples)

        def stream():
            return items
    seed = int(sampling.get("seed", 42))
    want = {
        "test": sampling.get("test_per_class", 50),
        "fewshot": sampling.get("fewshot_per_class", 0),
        "train": sampling.get("train_per_class", 0),
        "val": sampling.get("val_per_class", 0),
    }
    order = list(sampling.get("order", DEFAULT_ORDER))
    order += [k for k in DEFAULT_ORDER if k not in order]
    by_class: dict[str, list[str]] = {lab: [] for lab in labels}
    seen: set[str] = set()
    for s in stream():  # pass 1: ids only
        if s.id not in seen:
            seen.add(s.id)
            by_class.setdefault(s.label, []).append(s.id)
    del seen
    out = Split()
    chosen: dict[str, tuple[str, int]] = {}  # id -> (split, position in that split)
    for lab in labels:
        remaining = sorted(by_class.get(lab, []))
        for split in order:
            n = want[split]
            if n == 0:
                continue
            perm = [remaining[i] for i in permute(len(remaining), seed)]
            take = perm if n == "all" else perm[:n]
            if n != "all" and len(take) < n:
                out.shortfalls.append({"split": split, "label": lab, "requested": n, "available": len(take)})
            for sid in take:
                chosen[sid] = (split, len(chosen))  # the global order keeps each split's order
            taken = set(take)
            remaining = [sid for sid in remaining if sid not in taken]
    slots: dict[str, list] = {k: [] for k in DEFAULT_ORDER}
    for s in stream():  # pass 2: keep the chosen samples
        hit = chosen.pop(s.id, None)
        if hit is not None:
            slots[hit[0]].append((hit[1], s))
    if chosen:
        from cytoreg.errors import DataError

        raise DataError(f"the data changed while it was read: {len(chosen)} chosen sample(s) vanished on the second "
                        f"pass (e.g. {next(iter(chosen))}); is something writing to the dataset folder?")
    for split, items in slots.items():
        setattr(out, split, [s for _, s in sorted(items, key=lambda x: x[0])])
    return out


def limit_stratified(samples: list[Sample], n: int) -> list[Sample]:
    """``--limit N``: N samples taken round-robin over the classes, each class in its drawn
    (seeded) order, classes in order of first appearance; returned in the original order.
    The first N sorted ids would be one class."""
    by_class: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_class.setdefault(s.label, []).append(i)
    queues = list(by_class.values())
    keep: list[int] = []
    depth = 0
    while len(keep) < n and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(keep) < n:
                keep.append(q[depth])
        depth += 1
    return [samples[i] for i in sorted(keep)]
