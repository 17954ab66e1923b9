"""The leaderboard's data model: run folders merged into a :class:`Board`, and a :class:`Table`
(rows = models, columns = task × setting) for one metric. Renderers (Markdown / CSV in
:mod:`cytoreg.report.leaderboard`, HTML in :mod:`cytoreg.report.html`) only read it.

Trust rules, so that a number is never shown as better than it is:

- a cell whose evaluation is not ``complete`` (coverage below the run's threshold, or a model
  stopped by a fail-fast error) is shown greyed with its coverage, never bolded or ranked;
- cells of one column must be scored on the same test-sample ids (a ``--limit`` run beside a
  full run is not comparable): mixed id sets are refused unless ``allow_mixed``, and then the
  cells on a different id set are flagged and not bolded or ranked;
- the best cell is bolded only among complete, comparable model cells; a cell whose paired
  bootstrap difference from the best includes 0 is marked *tied* rather than losing;
- baselines (weightless guessers) and paper rows never enter the mean rank.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytoreg.errors import CytoregError
from cytoreg.report.readers import read_results

#: metrics where smaller is better (ranking and "best" marks flip)
LOWER_IS_BETTER = {"ece", "invalid_rate", "brier"}
#: task baseline fields that give a metric's chance level
CHANCE = {"f1_weighted": "random_f1_weighted", "accuracy": "chance_accuracy"}
SETTING_NAMES = {"zero_shot": "zero-shot", "few_shot": "few-shot"}
#: resamples and seed of the paired bootstrap the leaderboard computes when a run holds none
TIE_RESAMPLES = 2000
TIE_SEED = 0


@dataclass
class Entry:
    task: str
    setting: str
    model: str
    evaluation: dict
    run: Path
    task_info: dict = field(default_factory=dict)   # results["tasks"][task] of this entry's run
    model_info: dict = field(default_factory=dict)  # results["models"][model] of this entry's run
    comparisons: list[dict] = field(default_factory=list)  # this run's paired bootstraps on this column
    limit: int | None = None  # the run's --limit, if any

    @property
    def status(self) -> str:
        return str(self.evaluation.get("status") or "complete")

    @property
    def n(self) -> int | None:
        n = self.evaluation.get("n_attempted", self.evaluation.get("n"))
        return int(n) if isinstance(n, (int, float)) else None

    @property
    def coverage(self) -> float | None:
        c = self.evaluation.get("coverage")
        return float(c) if isinstance(c, (int, float)) else None

    @property
    def is_baseline(self) -> bool:
        return self.model_info.get("capability") == "baseline"

    @property
    def sample_set(self) -> str:
        """Fingerprint of the test-sample ids this entry was scored on."""
        ids = (self.task_info.get("sample_ids") or {}).get("test")
        if not isinstance(ids, list):
            return f"n={self.n}"
        return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:12]


@dataclass
class Board:
    entries: dict[tuple[str, str, str], Entry] = field(default_factory=dict)
    tasks: dict[str, dict] = field(default_factory=dict)       # task name -> results["tasks"][name] (latest)
    runs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    results: dict[Path, dict] = field(default_factory=dict)   # run -> its results.json
    labels: dict[Path, str] = field(default_factory=dict)     # run -> short name shown instead of its path

    def label(self, run: Path) -> str:
        """A run's folder name (with its parent's when two runs share it): outputs never hold
        machine paths, so they can be moved and published."""
        return self.labels.get(run, run.name)

    def _add_label(self, run: Path) -> None:
        used = set(self.labels.values())
        for cand in (run.name, f"{run.parent.name}/{run.name}"):
            if cand not in used:
                self.labels[run] = cand
                return
        self.labels[run] = f"{run.name}#{len(self.labels) + 1}"

    @property
    def columns(self) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for t, s, _ in self.entries:
            seen.setdefault((t, s), None)
        return list(seen)

    @property
    def models(self) -> list[str]:
        seen: dict[str, None] = {}
        for _, _, m in self.entries:
            seen.setdefault(m, None)
        return list(seen)


def column_name(col: tuple[str, str]) -> str:
    task, setting = col
    return f"{task} ({SETTING_NAMES.get(setting, setting)})"


def load_runs(dirs: list[Path]) -> Board:
    """Later runs override earlier ones for the same task × model × setting (each override noted)."""
    board = Board()
    for d in dirs:
        d = Path(d)
        path = d / "results.json" if d.is_dir() else d
        if not path.exists():
            raise CytoregError(f"no results.json in {d}; pass the folders given to `cytoreg eval --output`")
        results = read_results(path)  # truncated / foreign files: a message naming the file and line
        run = path.parent.resolve()
        board.runs.append(run)
        board.results[run] = results
        board._add_label(run)
        for name, info in results["tasks"].items():
            old = board.tasks.get(name)
            if old is not None and old.get("spec_hash") != info.get("spec_hash"):
                board.notes.append(f"task '{name}' has a different spec in {board.label(run)} than in an earlier run "
                                   f"(spec hash {old.get('spec_hash')} → {info.get('spec_hash')}); the later is shown")
            board.tasks[name] = {**info, "_run": str(run)}
        comps = results.get("comparisons") or []
        limit = results.get("limit", (results.get("config") or {}).get("limit"))
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        for ev in results["evaluations"]:
            key = (ev["task"], ev["setting"], ev["model"])
            if key in board.entries:
                board.notes.append(f"{ev['model']} on {column_name(key[:2])}: {board.label(run)} overrides "
                                   f"{board.label(board.entries[key].run)}")
            board.entries[key] = Entry(*key, evaluation=ev, run=run, task_info=results["tasks"].get(ev["task"], {}),
                                       model_info=(results.get("models") or {}).get(ev["model"], {}),
                                       comparisons=[c for c in comps if (c.get("task"), c.get("setting")) == key[:2]],
                                       limit=limit)
    if not board.entries:
        raise CytoregError("the given runs hold no evaluations")
    return board


def metric_value(ev: dict, metric: str) -> float | None:
    v = ev.get("metrics", {}).get(metric)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class Cell:
    value: float | None
    low: float | None = None
    high: float | None = None
    best: bool = False
    n: int | None = None
    coverage: float | None = None
    incomplete: bool = False       # status other than complete: greyed, never bolded or ranked
    mixed: bool = False            # scored on other sample ids than the column's reference set
    tied: bool = False             # paired bootstrap: not significantly different from the best
    stopped: bool = False          # the model was stopped (fail-fast error, could not load): said so, not "—"

    @property
    def eligible(self) -> bool:
        """Takes part in best marks, ties and ranks."""
        return self.value is not None and not self.incomplete and not self.mixed

    def text(self, digits: int = 3) -> str:
        if self.value is None:
            return "stopped" if self.stopped else "—"
        s = f"{self.value:.{digits}f}"
        if self.low is not None and self.high is not None:
            s += f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return s

    def qualifiers(self) -> list[str]:
        """What a reader must know beside the number: n, coverage, and why it is not ranked."""
        if self.value is None:
            return []
        out = [f"n={self.n}"] if self.n is not None else []
        if self.coverage is not None and (self.coverage < 1 or self.incomplete):
            out.append(f"coverage {self.coverage:.2f}")
        if self.incomplete:
            out.append("incomplete")
        if self.mixed:
            out.append("other samples")
        if self.tied:
            out.append("tied with best")
        return out


@dataclass
class Row:
    name: str
    kind: str                      # "model", "baseline" (weightless guesser run) or "reference" / "chance"
    cells: list[Cell]
    mean_rank: float | None = None

    @property
    def complete(self) -> bool:
        return all(c.eligible for c in self.cells)


@dataclass
class Table:
    metric: str
    columns: list[tuple[str, str]]
    rows: list[Row]
    notes: list[str]


def _mark_mixed(board: Board, cols: list[tuple[str, str]], allow_mixed: bool, notes: list[str]) -> set:
    """Entries scored on another sample-id set than their column's reference set (the set most
    entries share; ties: the larger n). Refused unless ``allow_mixed``."""
    flagged: set[tuple[str, str, str]] = set()
    problems = []
    for t, s in cols:
        entries = [e for (tt, ss, _), e in board.entries.items() if (tt, ss) == (t, s)]
        groups: dict[str, list[Entry]] = {}
        for e in entries:
            groups.setdefault(e.sample_set, []).append(e)
        if len(groups) < 2:
            continue
        ref = max(groups, key=lambda k: (len(groups[k]), max(e.n or 0 for e in groups[k])))
        desc = "; ".join(f"{', '.join(e.model for e in es)} (n={es[0].n}"
                         f"{', limit ' + str(es[0].limit) if es[0].limit else ''}, run {board.label(es[0].run)})"
                         for k, es in groups.items())
        problems.append(f"{column_name((t, s))}: the models were scored on different samples: {desc}")
        for k, es in groups.items():
            if k != ref:
                flagged.update((e.task, e.setting, e.model) for e in es)
    if problems and not allow_mixed:
        raise CytoregError("cells of one column must come from the same test samples, or the numbers are not "
                           "comparable:\n  " + "\n  ".join(problems) +
                           "\nre-run the odd ones without --limit on the same task spec, or pass --allow-mixed to "
                           "show them flagged (never bolded or ranked)")
    if problems:
        notes.extend(f"{p} — cells off the column's main sample set are flagged 'other samples' and not ranked"
                     for p in problems)
    return flagged


def build_table(board: Board, metric: str, *, allow_mixed: bool = False, ties: bool = True) -> Table:
    cols = board.columns
    notes = list(board.notes)
    flagged = _mark_mixed(board, cols, allow_mixed, notes)
    rows: list[Row] = []
    stopped_reasons: dict[str, None] = {}
    for m in board.models:
        cells = []
        baseline = False
        for t, s in cols:
            e = board.entries.get((t, s, m))
            if e is None:
                cells.append(Cell(None))
                continue
            baseline = baseline or e.is_baseline
            ci = e.evaluation.get("ci", {}).get(metric) or {}
            cells.append(Cell(metric_value(e.evaluation, metric), ci.get("low"), ci.get("high"), n=e.n,
                              coverage=e.coverage, incomplete=e.status != "complete", mixed=(t, s, m) in flagged,
                              stopped=e.status == "stopped"))
            if e.status == "stopped" and e.evaluation.get("stopped_reason"):
                stopped_reasons.setdefault(str(e.evaluation["stopped_reason"]), None)
        rows.append(Row(m, "baseline" if baseline else "model", cells))
    if not any(c.value is not None for r in rows for c in r.cells):
        known = sorted({k for e in board.entries.values() for k, v in e.evaluation.get("metrics", {}).items()
                        if isinstance(v, (int, float))})
        raise CytoregError(f"no evaluation has the metric '{metric}'; scalar metrics in these runs: {', '.join(known)}")
    lower = metric in LOWER_IS_BETTER
    ranked = [r for r in rows if r.kind in ("model", "baseline")]
    contenders = [r for r in ranked if r.kind == "model"] or ranked  # baselines only when nothing else ran
    seen: dict = {}
    for j, col in enumerate(cols):
        pool = [r for r in contenders if r.cells[j].eligible]
        if not pool:
            continue
        best_v = (min if lower else max)(r.cells[j].value for r in pool)
        best_rows = [r for r in pool if r.cells[j].value == best_v]
        for r in best_rows:
            r.cells[j].best = True
        if ties and len(best_rows) == 1:
            for r in pool:
                if r is not best_rows[0] and _tied(board, col, best_rows[0].name, r.name, metric, seen):
                    r.cells[j].tied = True
    incomplete_cells = [f"{r.name} on {column_name(c)} (coverage {cell.coverage:.2f})" if cell.coverage is not None
                        else f"{r.name} on {column_name(c)}"
                        for r in ranked for c, cell in zip(cols, r.cells) if cell.value is not None and cell.incomplete]
    if incomplete_cells:
        notes.append("incomplete evaluations (some samples got no answer: the number covers the answered ones "
                     "only) are greyed and never ranked: " + "; ".join(incomplete_cells))
    if stopped_reasons:
        notes.append("stopped models (scored on what they answered before the stop, if anything; never ranked): "
                     + "; ".join(stopped_reasons))
    if any(c.tied for r in rows for c in r.cells):
        notes.append(f"'tied with best': the paired bootstrap ({TIE_RESAMPLES} resamples, or the run's own) of the "
                     "difference from the column's best includes 0")
    models = [r for r in rows if r.kind == "model"]
    complete = [r for r in models if r.complete]
    if complete and cols:
        from scipy.stats import rankdata

        for j in range(len(cols)):
            vals = [r.cells[j].value for r in complete]
            ranks = rankdata(vals if lower else [-v for v in vals], method="average")
            for r, rank in zip(complete, ranks):
                r.mean_rank = (r.mean_rank or 0.0) + float(rank) / len(cols)
    if any(not r.complete for r in models):
        def why(r) -> str:
            out = []
            for word, pick in (("stopped", lambda c: c.stopped), ("missing", lambda c: not c.eligible and not c.stopped)):
                cs = [column_name(col) for col, cell in zip(cols, r.cells) if not cell.eligible and pick(cell)]
                if cs:
                    out.append(f"{word} {', '.join(cs)}")
            return "; ".join(out)

        notes.append("mean rank is over complete rows only (baselines are never ranked); incomplete: " +
                     "; ".join(f"{r.name} ({why(r)})" for r in models if not r.complete))
    rows = models + [r for r in rows if r.kind == "baseline"]
    # chance level and the papers' numbers, as their own rows
    chance_field = CHANCE.get(metric)
    if chance_field:
        cells = [Cell(num(board.tasks.get(t, {}).get("baselines", {}).get(chance_field))) for t, _ in cols]
        if any(c.value is not None for c in cells):
            rows.append(Row(f"chance ({chance_field}, expected)", "chance", cells))
    refs: dict[str, list[Cell]] = {}
    for j, (t, _) in enumerate(cols):
        ref = board.tasks.get(t, {}).get("reference") or {}
        values = dict(ref.get("values") or {}) if ref.get("metric") == metric else {}
        if metric == "f1_weighted" and ref.get("random_f1_weighted") is not None:
            values["random baseline"] = ref["random_f1_weighted"]
        for name, v in values.items():
            refs.setdefault(f"paper: {name}", [Cell(None) for _ in cols])[j] = Cell(num(v))
    rows += [Row(name, "reference", cells) for name, cells in refs.items()]
    if refs:
        sources = {t: (board.tasks.get(t, {}).get("reference") or {}).get("source") for t, _ in cols}
        cited = "; ".join(f"{t}: {s}" for t, s in sources.items() if s)
        notes.append("paper rows are the published numbers, computed on the paper's own samples, not on these"
                     + (f" (sources — {cited})" if cited else ""))
    return Table(metric, cols, rows, notes)


def _tied(board: Board, col: tuple[str, str], best: str, other: str, metric: str, seen: dict) -> bool:
    """True when the paired bootstrap of (best - other) on the same samples includes 0."""
    a, b = board.entries[(*col, best)], board.entries[(*col, other)]
    if a.run == b.run:
        for c in a.comparisons:
            if c.get("metric") == metric and {c.get("a"), c.get("b")} == {best, other}:
                lo, hi = c.get("low"), c.get("high")  # null when the metric was undefined (NaN)
                return lo is not None and hi is not None and lo <= 0 <= hi
    pa, pb = _predictions(a, seen), _predictions(b, seen)
    if pa is None or pb is None:
        return False
    from cytoreg.metrics import statistics
    from cytoreg.registry.builtins import METRICS

    if metric not in METRICS or metric.startswith(("auc", "ece")):
        return False  # needs probabilities that samples.jsonl does not keep in order
    ids = [i for i in pa if i in pb]
    if len(ids) != len(pa) or len(ids) != len(pb):
        return False
    from cytoreg.metrics.classification import Predictions

    labels = list(a.task_info.get("labels") or [])
    y = [pa[i][0] for i in ids]
    try:
        r = statistics.paired_bootstrap(Predictions(y, [pa[i][1] for i in ids], labels),
                                        Predictions(y, [pb[i][1] for i in ids], labels),
                                        metric, TIE_RESAMPLES, TIE_SEED)
    except (ValueError, KeyError):
        return False
    return r["low"] <= 0 <= r["high"]


def _predictions(e: Entry, seen: dict) -> dict[str, tuple[str, str | None]] | None:
    """id -> (label, parsed) of an entry's first tries, from its run's samples.jsonl; each file is
    read once per table (``seen``: run -> (task, setting, model) -> rows, or None if unreadable)."""
    if e.run not in seen:
        by_entry: dict[tuple[str, str, str], dict[str, tuple[str, str | None]]] | None = {}
        try:
            with (e.run / "samples.jsonl").open(encoding="utf-8") as fh:
                for line in fh:
                    r = json.loads(line)
                    if r.get("try", 0) == 0:
                        by_entry.setdefault((r.get("task"), r.get("setting"), r.get("model")), {})[
                            str(r["id"])] = (r["label"], r.get("parsed"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            by_entry = None  # a missing or damaged samples.jsonl: no recomputed tie marks for this run
        seen[e.run] = by_entry
    rows = seen[e.run]
    return None if rows is None else rows.get((e.task, e.setting, e.model))


def num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
