"""Bridge to Hugging Face ``evaluate`` metrics: ``evaluate:f1`` (hub, needs network) or
``evaluate:/path/to/metric_script.py`` / a local metric folder (works offline)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from cytoreg.errors import CytoregError


@lru_cache(maxsize=None)
def _load(ref: str):
    try:
        import evaluate
    except ImportError as exc:
        raise CytoregError(f"metric 'evaluate:{ref}' needs the 'evaluate' package: pip install 'cytoreg[metrics]'") from exc
    try:
        return evaluate.load(ref)
    except Exception as exc:  # evaluate raises many types (FileNotFoundError, ConnectionError...)
        raise CytoregError(f"metric 'evaluate:{ref}': cannot load it ({type(exc).__name__}: {exc}). "
                           "Offline, give a local path to the metric script or folder.") from exc


def evaluate_metric(ref: str, p) -> Any:
    metric = _load(ref)
    index = {lab: i for i, lab in enumerate(p.labels)}
    preds = [index.get(x, -1) if x is not None else -1 for x in p.y_pred]
    refs = [index[t] for t in p.y_true]
    result = metric.compute(predictions=preds, references=refs)
    if isinstance(result, dict) and len(result) == 1:
        return float(next(iter(result.values())))
    return result
