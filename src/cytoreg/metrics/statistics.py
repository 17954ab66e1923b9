"""Spread, confidence intervals, paired tests and chance baselines.

- ``fold_spread``: the seed paper's 5-fold spread — per class, the test answers in sampling
  order are cut into k contiguous blocks; the metric is computed per fold; mean ± sd (ddof=1).
- ``bootstrap_ci`` / ``bootstrap_cis``: percentile (default) or BCa bootstrap over samples,
  seeded; every resample's confusion counts come from one ``bincount`` (metrics/fast.py).
- ``paired_bootstrap``: both models resampled on the same indices (seed A: 20,000 resamples).
- ``random_f1_weighted``: expected weighted F1 of a guesser that draws labels from the class
  distribution (seed A's "random baseline"): precision_c = recall_c = p_c, so Σ p_c².
"""
from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from cytoreg.metrics import fast

if TYPE_CHECKING:
    from cytoreg.metrics.classification import Predictions

ScalarFn = Callable[["Predictions"], float]


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
    folds = [f for f in fold_indices(p.y_true, k) if f]
    if isinstance(fn, str) and fn in fast.FAST:
        codes, kk = fast.encode(p)
        values = [float(fast.FAST[fn](fast.Counts(fast.counts(codes[f], kk)))[0]) for f in folds]
    else:
        if isinstance(fn, str):
            from cytoreg.registry.builtins import METRICS

            fn = METRICS.get(fn)
        values = [fn(p.subset(f)) for f in folds]
    arr = np.array(values, dtype=float)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")
    return {"mean": float(arr.mean()), "sd": sd, "k": len(values), "values": [float(v) for v in arr]}


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


#: resampled statistics by (answers digest, K, seed) → {metric: values}; a CI and a paired test
#: with the same seed draw the same resamples, so the second reuses the first's (prefixes too:
#: the first R rows of a larger draw are the smaller draw)
_MEMO: "OrderedDict[tuple, dict[str, np.ndarray]]" = OrderedDict()
_MEMO_SIZE = 32


def resampled_stats(p: Predictions, metrics: Sequence[str], resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Registered label-based metrics on ``resamples`` bootstrap resamples of ``p`` (rows of
    ``default_rng(seed).integers(0, n, (resamples, n))``), all from one pass over count arrays."""
    codes, k = fast.encode(p)
    key = (hashlib.blake2b(codes.tobytes(), digest_size=16).hexdigest(), len(codes), k, seed)
    have = _MEMO.get(key, {})
    out = {m: have[m][:resamples] for m in metrics if m in have and len(have[m]) >= resamples}
    todo = [m for m in metrics if m not in out]
    if todo:
        fresh = fast.resampled(codes, k, todo, resamples, seed)
        out.update(fresh)
        slot = _MEMO.setdefault(key, {})
        for m, v in fresh.items():
            if len(v) >= len(slot.get(m, ())):
                slot[m] = v
        _MEMO.move_to_end(key)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return out


def _stats(p: Predictions, metric: str | ScalarFn, resamples: int, seed: int) -> np.ndarray:
    """The metric on each resample: count arrays for registered label-based metrics, else the
    function on each resampled subset."""
    if isinstance(metric, str) and metric in fast.FAST:
        return resampled_stats(p, [metric], resamples, seed)[metric]
    if isinstance(metric, str):
        from cytoreg.registry.builtins import METRICS

        metric = METRICS.get(metric)
    return np.array([metric(p.subset(ix)) for ix in _resample_indices(len(p.y_true), resamples, seed)],
                    dtype=float)


def _observed(p: Predictions, metric: str | ScalarFn) -> float:
    if isinstance(metric, str) and metric in fast.FAST:
        return fast.full(p, metric)
    if isinstance(metric, str):
        from cytoreg.registry.builtins import METRICS

        metric = METRICS.get(metric)
    return float(metric(p))


def _interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    return float(np.nanquantile(stats, alpha)), float(np.nanquantile(stats, 1 - alpha))


def _bca_interval(stats: np.ndarray, observed: float, jack: np.ndarray, confidence: float
                  ) -> tuple[float, float]:
    """Bias-corrected and accelerated percentile interval (Efron 1987), as scipy.stats.bootstrap
    computes it: bias from the share of resamples below the observed value, acceleration from the
    jackknife. NaN where either is undefined (all resamples on one side, a constant jackknife)."""
    from statistics import NormalDist

    ok = stats[~np.isnan(stats)]
    share = ((ok < observed).sum() + (ok <= observed).sum()) / (2 * len(ok)) if len(ok) else np.nan
    dev = jack.mean() - jack
    den = 6 * (dev ** 2).sum() ** 1.5
    if not 0 < share < 1 or den == 0:
        return float("nan"), float("nan")
    normal = NormalDist()
    z0, a = normal.inv_cdf(share), (dev ** 3).sum() / den
    bounds = []
    for z in (normal.inv_cdf((1 - confidence) / 2), normal.inv_cdf((1 + confidence) / 2)):
        bounds.append(float(np.nanquantile(stats, normal.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))))
    return bounds[0], bounds[1]


def bootstrap_cis(p: Predictions, metrics: Sequence[str], resamples: int = 1000, confidence: float = 0.95,
                  seed: int = 0, method: str = "percentile") -> dict[str, dict]:
    """Bootstrap CIs of several metrics from the same resamples; label-based registered metrics
    all come from one pass over count arrays. ``method``: ``percentile`` or ``bca``."""
    if method not in ("percentile", "bca"):
        raise ValueError(f"statistics.ci: '{method}' is not one of percentile, bca")
    n = len(p.y_true)
    if n == 0 or resamples <= 0:
        return {m: {"low": float("nan"), "high": float("nan"), "resamples": 0} for m in metrics}
    named = [m for m in metrics if m in fast.FAST]
    all_stats = resampled_stats(p, named, resamples, seed) if named else {}
    out = {}
    for m in metrics:
        stats = all_stats[m] if m in all_stats else _stats(p, m, resamples, seed)
        if method == "bca":
            if m not in fast.FAST:
                raise ValueError(f"statistics.ci: bca needs a label-based metric with a jackknife; '{m}' has none")
            codes, k = fast.encode(p)
            low, high = _bca_interval(stats, fast.full(p, m), fast.jackknife(codes, k, m), confidence)
        else:
            low, high = _interval(stats, confidence)
        out[m] = {"low": low, "high": high, "resamples": int(resamples), "confidence": confidence,
                  "sd": float(np.nanstd(stats, ddof=1))}
        if method == "bca":
            out[m]["method"] = "bca"
    return out


def bootstrap_ci(p: Predictions, fn: str | ScalarFn, resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0, method: str = "percentile") -> dict:
    """Bootstrap CI of a metric (a registered name or a function)."""
    n = len(p.y_true)
    if n == 0 or resamples <= 0:
        return {"low": float("nan"), "high": float("nan"), "resamples": 0}
    if isinstance(fn, str):
        return bootstrap_cis(p, [fn], resamples, confidence, seed, method)[fn]
    if method != "percentile":
        raise ValueError("statistics.ci: bca needs a registered label-based metric")
    stats = _stats(p, fn, resamples, seed)
    low, high = _interval(stats, confidence)
    return {"low": low, "high": high, "resamples": int(resamples), "confidence": confidence,
            "sd": float(np.nanstd(stats, ddof=1))}


def paired_bootstrap(a: Predictions, b: Predictions, fn: str | ScalarFn, resamples: int = 20000,
                     seed: int = 0, confidence: float = 0.95) -> dict:
    """Difference fn(a) - fn(b) on the same samples; two-sided p from the resampled differences.
    Both sides use the same resample indices (the same seed), so each model's resampled values
    are computed once and shared with its CIs."""
    if a.y_true != b.y_true:
        raise ValueError("paired bootstrap needs both models scored on the same samples in the same order")
    observed = _observed(a, fn) - _observed(b, fn)
    diffs = _stats(a, fn, resamples, seed) - _stats(b, fn, resamples, seed)
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
