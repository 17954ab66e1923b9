"""Classification metrics, registered by name. The arithmetic is scikit-learn's.

Every metric takes a :class:`Predictions` bundle. Invalid answers (``None`` predictions) are
mapped to a reserved label that is never true: they count as errors for their true class and
as a false positive for no class — the seed paper's "not id" column.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from cytoreg.registry.builtins import METRICS

INVALID = "__invalid__"


@dataclass
class Predictions:
    y_true: list[str]
    y_pred: list[str | None]
    labels: list[str]
    scores: np.ndarray | None = None  # (n, len(labels)) probabilities, when the model gives them

    def __post_init__(self) -> None:
        if len(self.y_true) != len(self.y_pred):
            raise ValueError("y_true and y_pred differ in length")

    @property
    def pred(self) -> list[str]:
        return [INVALID if p is None else p for p in self.y_pred]

    def subset(self, idx: Sequence[int]) -> "Predictions":
        idx = list(idx)
        return Predictions([self.y_true[i] for i in idx], [self.y_pred[i] for i in idx], self.labels,
                           None if self.scores is None else self.scores[idx])


MetricFn = Callable[[Predictions], Any]


def scalar(name: str, description: str, ci: bool = True) -> Callable[[MetricFn], MetricFn]:
    """Register a one-number metric; ``ci=False`` declares that it gets no bootstrap CI / fold spread."""
    register = METRICS.register(name, description=description, kind="scalar")

    def deco(fn: MetricFn) -> MetricFn:
        fn.ci = ci  # type: ignore[attr-defined]
        return register(fn)

    return deco


@scalar("accuracy", "fraction of samples whose parsed answer equals the label")
def accuracy(p: Predictions) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(p.y_true, p.pred))


@scalar("balanced_accuracy", "mean recall over the classes present in the labels")
def balanced_accuracy(p: Predictions) -> float:
    present = [lab for lab in p.labels if lab in set(p.y_true)]
    recalls = _prf(p, "none", present)[1]
    return float(np.mean(recalls)) if len(recalls) else float("nan")


def _prf(p: Predictions, average: str, labels: list[str] | None = None):
    from sklearn.metrics import precision_recall_fscore_support

    return precision_recall_fscore_support(p.y_true, p.pred, labels=labels or p.labels,
                                           average=None if average == "none" else average,
                                           zero_division=0)


@scalar("f1_weighted", "F1 per class weighted by true-class support (the seeds' headline metric)")
def f1_weighted(p: Predictions) -> float:
    return float(_prf(p, "weighted")[2])


@scalar("f1_macro", "unweighted mean F1 over the label set")
def f1_macro(p: Predictions) -> float:
    present = [lab for lab in p.labels if lab in set(p.y_true)]
    return float(_prf(p, "macro", present)[2])


@scalar("precision_macro", "unweighted mean precision over the classes present")
def precision_macro(p: Predictions) -> float:
    present = [lab for lab in p.labels if lab in set(p.y_true)]
    return float(_prf(p, "macro", present)[0])


@scalar("recall_macro", "unweighted mean recall over the classes present")
def recall_macro(p: Predictions) -> float:
    return balanced_accuracy(p)


@scalar("cohen_kappa", "Cohen's kappa between labels and answers")
def cohen_kappa(p: Predictions) -> float:
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(p.y_true, p.pred))


@scalar("invalid_rate", "fraction of answers that could not be mapped to a label")
def invalid_rate(p: Predictions) -> float:
    return float(np.mean([x is None for x in p.y_pred])) if p.y_pred else float("nan")


@METRICS.register("per_class", description="precision, recall, F1 and support per label", kind="table")
def per_class(p: Predictions) -> dict[str, dict[str, float]]:
    prec, rec, f1, sup = _prf(p, "none")
    return {lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                  "support": int(sup[i])} for i, lab in enumerate(p.labels)}


@METRICS.register("confusion_matrix", description="counts, rows = true label, columns = labels + invalid",
                  kind="table")
def confusion(p: Predictions) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix

    cols = list(p.labels) + [INVALID]
    m = confusion_matrix(p.y_true, p.pred, labels=cols)
    return {"labels": list(p.labels), "columns": list(p.labels) + ["invalid"],
            "matrix": m[: len(p.labels)].tolist()}


def _auc_inputs(p: Predictions):
    if p.scores is None:
        return None
    y = np.array([p.labels.index(t) if t in p.labels else -1 for t in p.y_true])
    return y, np.asarray(p.scores, dtype=float)


@METRICS.register("auc_per_class", description="one-vs-rest ROC AUC per label (needs model scores)",
                  kind="table")
def auc_per_class(p: Predictions) -> dict[str, float] | None:
    from sklearn.metrics import roc_auc_score

    inp = _auc_inputs(p)
    if inp is None:
        return None
    y, s = inp
    out = {}
    for k, lab in enumerate(p.labels):
        pos = y == k
        out[lab] = float(roc_auc_score(pos, s[:, k])) if 0 < pos.sum() < len(y) else float("nan")
    return out


@scalar("auc_macro", "mean one-vs-rest ROC AUC over labels present (needs model scores)", ci=False)
def auc_macro(p: Predictions) -> float | None:
    per = auc_per_class(p)
    if per is None:
        return None
    vals = [v for v in per.values() if not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


@scalar("ece", "expected calibration error of the top-1 probability (15 equal-width bins)", ci=False)
def ece(p: Predictions, bins: int = 15) -> float | None:
    if p.scores is None:
        return None
    s = np.asarray(p.scores, dtype=float)
    conf = s.max(axis=1)
    pred = [p.labels[i] for i in s.argmax(axis=1)]
    correct = np.array([a == b for a, b in zip(pred, p.y_true)], dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def compute(names: Sequence[str], p: Predictions) -> dict[str, Any]:
    """Evaluate registered metrics (and ``evaluate:`` bridges) by name."""
    out: dict[str, Any] = {}
    for name in names:
        if name.startswith("evaluate:"):
            from cytoreg.metrics.hf_evaluate import evaluate_metric

            out[name] = evaluate_metric(name.split(":", 1)[1], p)
        else:
            out[name] = METRICS.get(name)(p)
    return out
