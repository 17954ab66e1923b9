"""The statistics as cytoreg computed them before count arrays (a Python loop over resamples,
one confusion matrix each): the reference the vectorised path must match bit for bit."""
from typing import Callable

import numpy as np


def encode(p) -> tuple[np.ndarray, np.ndarray, int]:
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


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_ci(p, name: str, resamples: int, confidence: float, seed: int) -> dict:
    t, q, k = encode(p)
    stats = resampled(t, q, k, FAST[name], resample_indices(len(t), resamples, seed))
    alpha = (1 - confidence) / 2
    return {"low": float(np.nanquantile(stats, alpha)), "high": float(np.nanquantile(stats, 1 - alpha)),
            "resamples": int(resamples), "confidence": confidence, "sd": float(np.nanstd(stats, ddof=1))}


def paired_bootstrap(a, b, name: str, resamples: int, seed: int, confidence: float = 0.95) -> dict:
    n = len(a.y_true)
    idx = resample_indices(n, resamples, seed)
    ta, qa, k = encode(a)
    tb, qb, _ = encode(b)
    full = np.arange(n)[None, :]
    fn = FAST[name]
    observed = float(resampled(ta, qa, k, fn, full)[0] - resampled(tb, qb, k, fn, full)[0])
    diffs = resampled(ta, qa, k, fn, idx) - resampled(tb, qb, k, fn, idx)
    alpha = (1 - confidence) / 2
    p_two = 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))
    return {"difference": float(observed), "low": float(np.quantile(diffs, alpha)),
            "high": float(np.quantile(diffs, 1 - alpha)), "p_value": float(min(1.0, p_two)),
            "resamples": int(resamples)}
