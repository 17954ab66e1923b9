"""The training subsets at each n and the chat examples built from them.

The subsets are the ones the probe heads use for their label-efficiency curves
(``probe_heads.subsample_per_class`` over the task's training split with the probe's seed, the
first repeat): per class n images (all when fewer), nested as n grows. An example is exactly the
request the evaluation sends (the task's zero-shot prompt and the image, built by the task kind)
followed by the label as the assistant's answer, so the model is trained on what it is asked."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cytoreg.errors import CytoregError, DataError
from cytoreg.models.base import ChatRequest
from cytoreg.tasks.samples import Sample


@dataclass
class Subset:
    n: int
    samples: list[Sample]
    shortfalls: dict[str, int] = field(default_factory=dict)  # label -> images available (< n)


@dataclass
class TrainingData:
    task: str
    labels: list[str]
    train: list[Sample]
    val: list[Sample]
    seed: int
    kind: Any


def training_data(task_spec: Any, kind: Any) -> TrainingData:
    """The task's train / val split, drawn by the engine's sampler (as the probes draw it)."""
    if hasattr(kind, "training_split"):  # probe tasks: train / val drawn once, shared by every view
        split = kind.training_split()
        seed = int((kind.probe or {}).get("seed", 0))
    else:
        split = kind.prepare().split
        seed = int((kind.sampling or {}).get("seed", 42))
    if not split.train:
        raise DataError(f"task '{task_spec.name}' has no training split to fine-tune on (sampling.train_per_class "
                        f"is {(kind.sampling or {}).get('train_per_class', 0)}); set it in {task_spec.path} or "
                        f"pick a task with training data (e.g. acevedo-heads)")
    if "zero_shot" not in (kind.prompts or {}):
        raise CytoregError(f"task '{task_spec.name}' has no prompts.zero_shot, the user turn of every training "
                           f"example; add it to {task_spec.path}")
    return TrainingData(task_spec.name, list(kind.labels), list(split.train), list(split.val), seed, kind)


def subsets(data: TrainingData, ns: list[int]) -> list[Subset]:
    """Per n, the probes' subset (seeded, nested); classes with fewer than n images give all they have."""
    from cytoreg.tasks.probe_heads import subsample_per_class

    y = [s.label for s in data.train]
    have = {lab: y.count(lab) for lab in data.labels}
    out = []
    for n in ns:
        idx = subsample_per_class(y, n, data.seed)
        out.append(Subset(n, [data.train[i] for i in idx],
                          {lab: c for lab, c in have.items() if c < n}))
    return out


def request_for(data: TrainingData, sample: Sample, generation: dict) -> ChatRequest:
    """What the evaluation sends for this image (zero-shot setting, first try)."""
    return data.kind.chat_request(sample, "zero_shot", [], generation, 0)


def jsonl_bytes(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for x in lines)


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()
