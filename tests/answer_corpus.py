"""Load the answer-extraction corpora and score a reader on them (used by the tests and bench/answers.py).

A reader maps (case, reply) to (label or None, step). Scores per corpus: accuracy on answerable
replies (gold is a label), invalid rate (no label read, over all replies), confidently-wrong rate
(a label read that is not the gold one — including a label read from a reply whose gold is
``invalid`` — over all replies), and the same counts per extraction step."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from cytoreg.answers import AnswerExtractor, OptionReader
from cytoreg.registry.yamlio import read_structured

CORPORA = Path(__file__).parent / "answer_corpora"
INVALID = "invalid"


@lru_cache(maxsize=None)
def task_labels(name: str) -> tuple[list[str], dict[str, list[str]]]:
    """The built-in task's label set and aliases, as the run uses them."""
    from cytoreg.registry.catalog import Catalog

    spec = Catalog.load([]).task(name)
    return list(spec.get("labels")), dict(spec.get("aliases") or {})


def classification_cases() -> list[dict]:
    return read_structured(CORPORA / "classification.yaml")["cases"]


def mcq_cases() -> list[dict]:
    data = read_structured(CORPORA / "mcq.yaml")
    return [dict(c, options=data["cases"][c["case"]]) for c in data["replies"]]


@lru_cache(maxsize=None)
def _extractor(task: str) -> AnswerExtractor:
    return AnswerExtractor(*task_labels(task))


def cytoreg_classification(case: dict) -> tuple[str | None, str]:
    ex = _extractor(case["task"]).extract(case["reply"])
    return ex.label, ex.step


def cytoreg_mcq(case: dict) -> tuple[str | None, str]:
    ex = OptionReader(case["options"]).extract(case["reply"])
    return ex.label, ex.step


def _can_infer(reply: str, names: list[str]) -> str | None:
    """VLMEvalKit's ``can_infer`` over the names lettered A, B, …; its "Z" (a refusal) is invalid
    unless a 26th name holds that letter."""
    import string

    from vlmeval.utils.matching_util import can_infer

    choices = dict(zip(string.ascii_uppercase, names))
    got = can_infer(reply, dict(choices))
    if not got or (got == "Z" and len(names) < 26):
        return None
    return choices.get(got)


def vlmeval_classification(case: dict) -> tuple[str | None, str]:
    label = _can_infer(case["reply"], task_labels(case["task"])[0])
    return label, "can_infer" if label else "invalid"


def vlmeval_mcq(case: dict) -> tuple[str | None, str]:
    text = _can_infer(case["reply"], list(case["options"]))
    return (str(case["options"].index(text) + 1), "can_infer") if text else (None, "invalid")


@dataclass
class Score:
    n: int = 0
    answerable: int = 0
    correct: int = 0
    invalid: int = 0
    wrong: int = 0
    steps: dict[str, Counter] = field(default_factory=dict)
    wrong_cases: list[tuple[str, str | None, str]] = field(default_factory=list)
    missed_cases: list[tuple[str, str]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.answerable

    @property
    def invalid_rate(self) -> float:
        return self.invalid / self.n

    @property
    def wrong_rate(self) -> float:
        return self.wrong / self.n


def score(cases: list[dict], reader: Callable[[dict], tuple[str | None, str]]) -> Score:
    s = Score()
    for case in cases:
        gold = str(case["gold"])
        label, step = reader(case)
        s.n += 1
        s.answerable += gold != INVALID
        counts = s.steps.setdefault(step, Counter())
        counts["n"] += 1
        if label is None:
            s.invalid += 1
            counts["right" if gold == INVALID else "missed"] += 1
            if gold != INVALID:
                s.missed_cases.append((case["reply"], gold))
        elif label == gold:
            s.correct += 1
            counts["right"] += 1
        else:
            s.wrong += 1
            counts["wrong"] += 1
            s.wrong_cases.append((case["reply"], label, gold))
    return s
