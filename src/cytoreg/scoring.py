"""What a run is (``EvalConfig``), what one task × model × setting produced (``Evaluation``), and how
it is scored. Below both the run loop (engine) and the report writers, so neither imports the other."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cytoreg.metrics import statistics
from cytoreg.metrics.classification import Predictions, compute

if TYPE_CHECKING:
    from cytoreg.engine.execute import CallStats



def wants_ci(name: str, value: object) -> bool:
    """A metric gets a bootstrap CI and a fold spread when it returned one finite number and did
    not declare otherwise (``fn.ci = False``; e.g. the score-based AUC and ECE, whose resampling
    costs seconds per evaluation)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return False
    if name.startswith("evaluate:"):
        return False
    from cytoreg.registry.builtins import METRICS

    if name not in METRICS:
        return False
    return bool(getattr(METRICS.get(name), "ci", True))


@dataclass
class EvalConfig:
    tasks: list[str]
    models: list[str]
    output: Path = Path("runs/latest")
    cache: Path | None = None          # default: <output>/cache.sqlite
    include: list[str] = field(default_factory=list)
    limit: int | None = None
    device: str | None = None
    concurrency: int | None = None
    bootstrap: int | None = None       # overrides the task spec's statistics.bootstrap
    seed: int = 0                      # seed for statistics and baselines
    judge: str | None = None           # model that maps replies the rules could not parse
    layers: list[int] | None = None    # overrides params.layers of layer-wise feature models (a sweep)
    shard: tuple[int, int] | None = None  # (i, n): fill the caches for this shard only; no results
    skip_api: bool = False             # in a shard: leave API (concurrent) generators to the merge step
    progress: bool = True
    min_coverage: float = 1.0          # an evaluation answering fewer of its requests is "incomplete"
    circuit_breaker: int | None = None  # overrides execution.circuit_breaker of every model
    overwrite: bool = False            # replace a finished run of another configuration in ``output``
    fresh_output: bool = False         # the CLI chose a fresh runs/<timestamp> (no --output given)
    settings: list[str] | None = None  # --settings: run only these (zero_shot, few_shot, ...)
    # -M / -T / --set as given ({"model_args": [...], "task_args": [...], "set": [...]}), and the
    # --config file they came from; recorded in results.json, hashed into the run identity
    overrides: dict = field(default_factory=dict)
    config_file: str | None = None


@dataclass
class Evaluation:
    task: str
    model: str
    setting: str
    records: list[dict]
    predictions: Predictions
    stats: CallStats
    cached: int
    usage: dict[str, int]
    tries: int = 1
    extra: dict = field(default_factory=dict)  # kind-specific results (probe: sizes, curves)
    ids: list[str] | None = None        # sample ids of ``predictions`` (the answered samples, in order)
    stopped_reason: str | None = None   # the model was stopped before all its requests were answered

    @property
    def n_attempted(self) -> int:
        return len(self.records)

    @property
    def n_errors(self) -> int:
        """Requests without a reply (transport, HTTP, decode, blocked, not sent); not invalid answers."""
        return sum(1 for r in self.records if r.get("error"))

    @property
    def coverage(self) -> float:
        return (self.n_attempted - self.n_errors) / self.n_attempted if self.n_attempted else 0.0

    def status(self, min_coverage: float) -> str:
        if self.stopped_reason:
            return "stopped"
        return "complete" if self.n_attempted and self.coverage >= min_coverage else "incomplete"



def score(ev: Evaluation, metric_names: list[str], spec_stats: dict, cfg: EvalConfig) -> dict:
    """Metrics, CIs and fold spreads on the answered samples only; nothing when none answered."""
    p = ev.predictions
    if not p.y_true:
        return {"metrics": {}, "ci": {}, "folds": {}}
    if p.scores is None:
        metric_names = [m for m in metric_names if not m.startswith(("auc", "ece"))]
    metrics = compute(metric_names, p)
    resamples = cfg.bootstrap if cfg.bootstrap is not None else int(spec_stats.get("bootstrap", 1000))
    conf = float(spec_stats.get("confidence", 0.95))
    seed = int(spec_stats.get("seed", cfg.seed))
    folds = int(spec_stats.get("folds", 5))
    method = str(spec_stats.get("ci", "percentile"))
    ci_metrics = [m for m, value in metrics.items() if wants_ci(m, value)]
    if method == "bca":  # BCa needs a jackknife, which only the label-based fast metrics have
        from cytoreg.metrics import fast

        ci = statistics.bootstrap_cis(p, [m for m in ci_metrics if m in fast.FAST], resamples, conf, seed, "bca")
        rest = [m for m in ci_metrics if m not in fast.FAST]
        ci.update({m: {**v, "method": "percentile"}
                   for m, v in statistics.bootstrap_cis(p, rest, resamples, conf, seed).items()})
    else:
        ci = statistics.bootstrap_cis(p, ci_metrics, resamples, conf, seed, method)  # one pass, all metrics
    spread = {m: statistics.fold_spread(p, m, folds) for m in ci_metrics} if folds > 1 else {}
    if ev.tries > 1:
        any_k: dict[str, bool] = {}
        for r in ev.records:
            if not r.get("error"):
                any_k[r["id"]] = any_k.get(r["id"], False) or bool(r["correct"])
        metrics[f"accuracy_any_of_{ev.tries}"] = float(np.mean(list(any_k.values())))
    return {"metrics": metrics, "ci": ci, "folds": spread}
