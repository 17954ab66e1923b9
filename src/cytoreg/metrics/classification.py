"""Classification metrics, registered by name, with scikit-learn's definitions. Label-based
ones are computed from confusion counts (metrics/fast.py, the same arithmetic the bootstrap
uses); numpy is imported when a metric runs, so listing metrics stays light.

Every metric takes a :class:`Predictions` bundle. Invalid answers (``None`` predictions) are
mapped to a reserved label that is never true: they count as errors for their true class and
as a false positive for no class — the seed paper's "not id" column.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from cytoreg.registry.builtins import METRICS

if TYPE_CHECKING:
    import numpy as np

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


def _fast(name: str, p: Predictions) -> float:
    from cytoreg.metrics import fast

    return fast.full(p, name)


@scalar("accuracy", "fraction of samples whose parsed answer equals the label")
def accuracy(p: Predictions) -> float:
    return _fast("accuracy", p)


@scalar("balanced_accuracy", "mean recall over the classes present in the labels")
def balanced_accuracy(p: Predictions) -> float:
    return _fast("balanced_accuracy", p)


@scalar("f1_weighted", "F1 per class weighted by true-class support (the seeds' headline metric)")
def f1_weighted(p: Predictions) -> float:
    return _fast("f1_weighted", p)


@scalar("f1_macro", "unweighted mean F1 over the label set")
def f1_macro(p: Predictions) -> float:
    return _fast("f1_macro", p)


@scalar("precision_macro", "unweighted mean precision over the classes present")
def precision_macro(p: Predictions) -> float:
    return _fast("precision_macro", p)


@scalar("recall_macro", "unweighted mean recall over the classes present")
def recall_macro(p: Predictions) -> float:
    return _fast("recall_macro", p)


@scalar("cohen_kappa", "Cohen's kappa between labels and answers")
def cohen_kappa(p: Predictions) -> float:
    return _fast("cohen_kappa", p)


@scalar("invalid_rate", "fraction of answers that could not be mapped to a label")
def invalid_rate(p: Predictions) -> float:
    return _fast("invalid_rate", p)


@METRICS.register("per_class", description="precision, recall, F1 and support per label", kind="table")
def per_class(p: Predictions) -> dict[str, dict[str, float]]:
    from cytoreg.metrics import fast

    c = fast.Counts(fast.counts(*fast.encode(p)))
    return {lab: {"precision": float(c.precision[0, i]), "recall": float(c.recall[0, i]),
                  "f1": float(c.f1[0, i]), "support": int(c.support[0, i])} for i, lab in enumerate(p.labels)}


@METRICS.register("confusion_matrix", description="counts, rows = true label, columns = labels + invalid",
                  kind="table")
def confusion(p: Predictions) -> dict[str, Any]:
    from cytoreg.metrics import fast

    codes, k = fast.encode(p)
    m = fast.counts(codes, k)[0]
    return {"labels": list(p.labels), "columns": list(p.labels) + ["invalid"],
            "matrix": m[:k, :k + 1].tolist()}


def _auc_inputs(p: Predictions):
    import numpy as np

    if p.scores is None:
        return None
    y = np.array([p.labels.index(t) if t in p.labels else -1 for t in p.y_true])
    return y, np.asarray(p.scores, dtype=float)


def binary_auc(positive: "np.ndarray", score: "np.ndarray") -> float:
    """ROC AUC as the Mann-Whitney statistic with average ranks for ties (= scikit-learn's
    ``roc_auc_score``, without importing it)."""
    import numpy as np

    _, inverse, count = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(count)
    ranks = ((ends - count + 1 + ends) / 2)[inverse.ravel()]
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@METRICS.register("auc_per_class", description="one-vs-rest ROC AUC per label (needs model scores)",
                  kind="table")
def auc_per_class(p: Predictions) -> dict[str, float] | None:
    inp = _auc_inputs(p)
    if inp is None:
        return None
    y, s = inp
    out = {}
    for k, lab in enumerate(p.labels):
        pos = y == k
        out[lab] = binary_auc(pos, s[:, k]) if 0 < pos.sum() < len(y) else float("nan")
    return out


@scalar("auc_macro", "mean one-vs-rest ROC AUC over labels present (needs model scores)", ci=False)
def auc_macro(p: Predictions) -> float | None:
    import numpy as np

    per = auc_per_class(p)
    if per is None:
        return None
    vals = [v for v in per.values() if not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


@scalar("ece", "expected calibration error of the top-1 probability (15 equal-width bins)", ci=False)
def ece(p: Predictions, bins: int = 15) -> float | None:
    import numpy as np

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
