"""What a leaderboard shows beside the main table, computed from a :class:`Board` (data only; the
renderers format it): task groups (per-group mean and mean win rate, as HELM reports them),
model metadata from the specs, efficiency (tokens, cost, latency) and provenance."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from cytoreg.report.board import Board, Table, column_name


@dataclass
class GroupScore:
    mean: float | None       # mean of the model's eligible cells in the group
    cells: int               # how many of the group's columns that mean covers
    win_rate: float | None   # share of head-to-head comparisons won (ties count half)


@dataclass
class GroupSummary:
    domain: str
    columns: list[str]
    scores: dict[str, GroupScore] = field(default_factory=dict)


def domain_of(board: Board, task: str) -> str:
    info = board.tasks.get(task, {})
    if info.get("domain"):
        return str(info["domain"])
    parent = task.split(".", 1)[0]  # views (<task>.<attribute>, <task>.<test set>) belong to their task
    return str(board.tasks.get(parent, {}).get("domain") or ("probes" if info.get("kind") == "probe" else "other"))


def group_summaries(board: Board, table: Table) -> list[GroupSummary]:
    """Per domain: each model's mean over its eligible cells and its mean win rate over every
    column × opponent pair where both have an eligible cell. Baselines and paper rows excluded."""
    from cytoreg.report.board import LOWER_IS_BETTER

    lower = table.metric in LOWER_IS_BETTER
    models = [r for r in table.rows if r.kind == "model"]
    by_domain: dict[str, list[int]] = {}
    for j, (task, _) in enumerate(table.columns):
        by_domain.setdefault(domain_of(board, task), []).append(j)
    out = []
    for domain, cols in by_domain.items():
        g = GroupSummary(domain, [column_name(table.columns[j]) for j in cols])
        for r in models:
            vals = [r.cells[j].value for j in cols if r.cells[j].eligible]
            wins = games = 0.0
            for j in cols:
                mine = r.cells[j]
                if not mine.eligible:
                    continue
                for other in models:
                    theirs = other.cells[j]
                    if other is r or not theirs.eligible:
                        continue
                    games += 1
                    if mine.value == theirs.value:
                        wins += 0.5
                    elif (mine.value < theirs.value) == lower:
                        wins += 1
            g.scores[r.name] = GroupScore(sum(vals) / len(vals) if vals else None, len(vals),
                                          wins / games if games else None)
        out.append(g)
    return out


MODEL_FIELDS = ("adapter", "capability", "parameters", "open_weights", "release", "license", "homepage")


def model_rows(board: Board) -> list[dict]:
    """One row per model: adapter, capability and the spec's metadata (latest run wins)."""
    rows: dict[str, dict] = {}
    for e in board.entries.values():
        meta = dict(e.model_info.get("meta") or {})
        rows[e.model] = {"model": e.model, "adapter": e.model_info.get("adapter"),
                         "capability": e.model_info.get("capability"), **meta}
    return list(rows.values())


@dataclass
class Efficiency:
    model: str
    requests: int = 0
    cached: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    currency: str = "USD"
    latency_p50: float | None = None
    latency_p95: float | None = None


def efficiency(board: Board, latencies: dict[str, list[float]]) -> list[Efficiency]:
    """Tokens and cost per model over all its shown evaluations; latency percentiles from the
    per-sample ``latency_s`` of the rows (``latencies``: model -> seconds)."""
    import numpy as np

    out: dict[str, Efficiency] = {}
    for e in board.entries.values():
        eff = out.setdefault(e.model, Efficiency(e.model))
        usage = e.evaluation.get("usage") or {}
        req = e.evaluation.get("requests") or {}
        eff.requests += int(req.get("sent") or 0)
        eff.cached += int(req.get("cached") or 0)
        eff.tokens_in += int(usage.get("prompt_tokens") or 0)
        eff.tokens_out += int(usage.get("completion_tokens") or 0)
    for e in board.entries.values():
        price = (e.model_info.get("meta") or {}).get("price")
        eff = out[e.model]
        if isinstance(price, dict) and (eff.tokens_in or eff.tokens_out):
            eff.cost = (eff.tokens_in * float(price["input_per_mtok"]) + eff.tokens_out *
                        float(price["output_per_mtok"])) / 1e6
            eff.currency = str(price.get("currency") or "USD")
    for model, secs in latencies.items():
        if secs and model in out:
            out[model].latency_p50 = float(np.percentile(secs, 50))
            out[model].latency_p95 = float(np.percentile(secs, 95))
    return list(out.values())


def provenance(board: Board) -> dict:
    """What a reader needs to reproduce or cite the table: versions, dates, spec hashes, seeds, n."""
    from cytoreg import __version__

    runs = []
    for run in board.runs:
        res = board.results.get(run, {})
        cfg = res.get("config") or {}
        runs.append({
            "run": board.label(run), "created": res.get("created"),
            "cytoreg": (res.get("packages") or {}).get("cytoreg"),
            "seed": cfg.get("seed"), "limit": res.get("limit", cfg.get("limit")),
            "tasks": {t: {"spec_hash": i.get("spec_hash"), "n_test": i.get("n_test")}
                      for t, i in (res.get("tasks") or {}).items()},
            "models": {m: i.get("spec_hash") for m, i in (res.get("models") or {}).items()},
        })
    return {"generator": f"cytoreg {__version__}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": runs}
