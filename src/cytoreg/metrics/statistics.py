"""Spread, confidence intervals, paired tests and chance baselines.

- ``fold_spread``: the seed paper's 5-fold spread — per class, the test answers in sampling
  order are cut into k contiguous blocks; the metric is computed per fold; mean ± sd (ddof=1).
- ``bootstrap_ci``: percentile bootstrap over samples, seeded.
- ``paired_bootstrap``: both models resampled on the same indices (seed A: 20,000 resamples).
- ``random_f1_weighted``: expected weighted F1 of a guesser that draws labels from the class
  distribution (seed A's "random baseline"): precision_c = recall_c = p_c, so Σ p_c².
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence

import numpy as np

from cytoreg.metrics.classification import Predictions

ScalarFn = Callable[[Predictions], float]


def fold_indices(y_true: Sequence[str], k: int = 5) -> list[list[int]]:
    """Per class, contiguous blocks in the given order; the first ``n % k`` folds get one more."""
    by_class: dict[str, list[int]] = {}
    for i, y in enumerate(y_true):
        by_class.setdefault(y, []).append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    for idx in by_class.values():
        base, extra = divmod(len(idx), k)
        start = 0
        for f in range(k):
            size = base + (1 if f < extra else 0)
            folds[f].extend(idx[start:start + size])
            start += size
    return folds


def fold_spread(p: Predictions, fn: str | ScalarFn, k: int = 5) -> dict:
    """The seed's k-fold spread: mean and sd (ddof=1) of the metric over contiguous per-class folds."""
    if isinstance(fn, str):
        from cytoreg.registry.builtins import METRICS

        fn = METRICS.get(fn)
    values = [fn(p.subset(f)) for f in fold_indices(p.y_true, k) if f]
    arr = np.array(values, dtype=float)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")
    return {"mean": float(arr.mean()), "sd": sd, "k": len(values), "values": [float(v) for v in arr]}


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def _stats(p: Predictions, metric: str | ScalarFn, indices: np.ndarray) -> np.ndarray:
    """The metric on each resample: the confusion-matrix fast path for registered names."""
    from cytoreg.metrics import fast

    if isinstance(metric, str) and metric in fast.FAST:
        t, q, k = fast.encode(p)
        return fast.resampled(t, q, k, fast.FAST[metric], indices)
    if isinstance(metric, str):
        from cytoreg.registry.builtins import METRICS

        metric = METRICS.get(metric)
    return np.array([metric(p.subset(ix)) for ix in indices], dtype=float)


def bootstrap_ci(p: Predictions, fn: str | ScalarFn, resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> dict:
    """Percentile bootstrap CI of a metric (a registered name or a function)."""
    n = len(p.y_true)
    if n == 0 or resamples <= 0:
        return {"low": float("nan"), "high": float("nan"), "resamples": 0}
    stats = _stats(p, fn, _resample_indices(n, resamples, seed))
    alpha = (1 - confidence) / 2
    return {"low": float(np.nanquantile(stats, alpha)), "high": float(np.nanquantile(stats, 1 - alpha)),
            "resamples": int(resamples), "confidence": confidence, "sd": float(np.nanstd(stats, ddof=1))}


def paired_bootstrap(a: Predictions, b: Predictions, fn: str | ScalarFn, resamples: int = 20000,
                     seed: int = 0, confidence: float = 0.95) -> dict:
    """Difference fn(a) - fn(b) on the same samples; two-sided p from the resampled differences."""
    if a.y_true != b.y_true:
        raise ValueError("paired bootstrap needs both models scored on the same samples in the same order")
    n = len(a.y_true)
    idx = _resample_indices(n, resamples, seed)
    full = np.arange(n)[None, :]
    observed = float(_stats(a, fn, full)[0] - _stats(b, fn, full)[0])
    diffs = _stats(a, fn, idx) - _stats(b, fn, idx)
    alpha = (1 - confidence) / 2
    p_two = 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))
    return {"difference": float(observed), "low": float(np.quantile(diffs, alpha)),
            "high": float(np.quantile(diffs, 1 - alpha)), "p_value": float(min(1.0, p_two)),
            "resamples": int(resamples)}


def class_distribution(y_true: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    counts = Counter(y_true)
    total = sum(counts.values())
    return np.array([counts.get(lab, 0) / total for lab in labels]) if total else np.zeros(len(labels))


def random_f1_weighted(y_true: Sequence[str], labels: Sequence[str]) -> float:
    """Expected weighted F1 of a guesser drawing from the class distribution: Σ p_c²."""
    p = class_distribution(y_true, labels)
    return float(np.sum(p ** 2))


def uniform_f1_weighted(y_true: Sequence[str], labels: Sequence[str]) -> float:
    """Expected weighted F1 of a uniform guesser over K labels: Σ p_c · 2 p_c (1/K) / (p_c + 1/K)."""
    p = class_distribution(y_true, labels)
    q = 1.0 / len(labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p > 0, 2 * p * q / (p + q), 0.0)
    return float(np.sum(p * f1))


def chance_accuracy(y_true: Sequence[str], labels: Sequence[str]) -> dict:
    p = class_distribution(y_true, labels)
    return {"uniform": 1.0 / len(labels), "prior": float(np.sum(p ** 2)), "majority": float(p.max())}


def pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson correlation; ``None`` with fewer than 3 pairs or when either side is constant."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])
