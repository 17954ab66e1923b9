"""Confusion-matrix arithmetic for resampling (bootstrap, folds, paired tests).

Thousands of resamples through scikit-learn would take minutes; these compute the same
numbers from integer-coded answers with ``np.bincount``. Tests check them against
scikit-learn on random inputs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from cytoreg.metrics.classification import Predictions


def encode(p: Predictions) -> tuple[np.ndarray, np.ndarray, int]:
    """True labels as 0..K-1, answers as 0..K (K = invalid or outside the label set)."""
    index = {lab: i for i, lab in enumerate(p.labels)}
    k = len(p.labels)
    t = np.array([index[y] for y in p.y_true], dtype=np.int64)
    q = np.array([index.get(y, k) if y is not None else k for y in p.y_pred], dtype=np.int64)
    return t, q, k


def confusion(t: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(t * (k + 1) + q, minlength=k * (k + 1)).reshape(k, k + 1)


def _f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm[:, :k].sum(axis=0).astype(float)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return f1, support


def accuracy(cm: np.ndarray) -> float:
    n = cm.sum()
    return float(np.trace(cm[:, : cm.shape[0]]) / n) if n else float("nan")


def f1_weighted(cm: np.ndarray) -> float:
    f1, support = _f1(cm)
    return float((f1 * support).sum() / support.sum()) if support.sum() else float("nan")


def f1_macro(cm: np.ndarray) -> float:
    f1, support = _f1(cm)
    present = support > 0
    return float(f1[present].mean()) if present.any() else float("nan")


def balanced_accuracy(cm: np.ndarray) -> float:
    k = cm.shape[0]
    support = cm.sum(axis=1).astype(float)
    present = support > 0
    recall = np.diag(cm[:, :k])[present] / support[present]
    return float(recall.mean()) if present.any() else float("nan")


FAST: dict[str, Callable[[np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1_weighted": f1_weighted,
    "f1_macro": f1_macro,
    "balanced_accuracy": balanced_accuracy,
    "recall_macro": balanced_accuracy,
}


def resampled(t: np.ndarray, q: np.ndarray, k: int, fn: Callable[[np.ndarray], float],
              indices: np.ndarray) -> np.ndarray:
    """fn on each row of ``indices`` (resamples × n) of the coded answers."""
    return np.array([fn(confusion(t[ix], q[ix], k)) for ix in indices])
