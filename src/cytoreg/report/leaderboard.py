"""``cytoreg leaderboard``: merge run folders into one table (rows = models, columns = task ×
setting), with confidence intervals, the best cell per column, baseline and paper-reference
rows, and a mean rank over complete rows only. Renders Markdown, tidy CSV and (see
:mod:`cytoreg.report.html`) a static HTML page."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytoreg.errors import CytoregError

#: metrics where smaller is better (ranking and "best" marks flip)
LOWER_IS_BETTER = {"ece", "invalid_rate", "brier"}
#: task baseline fields that give a metric's chance level
CHANCE = {"f1_weighted": "random_f1_weighted", "accuracy": "chance_accuracy"}
SETTING_NAMES = {"zero_shot": "zero-shot", "few_shot": "few-shot"}


@dataclass
class Entry:
    task: str
    setting: str
    model: str
    evaluation: dict
    run: Path


@dataclass
class Board:
    entries: dict[tuple[str, str, str], Entry] = field(default_factory=dict)
    tasks: dict[str, dict] = field(default_factory=dict)       # task name -> results["tasks"][name]
    runs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    learning_curves: list[dict] = field(default_factory=list)  # from `cytoreg finetune` runs

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
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CytoregError(f"{path} is not valid JSON ({exc}); was the run interrupted while writing?") from exc
        if results.get("schema") != "cytoreg/results/v1":
            raise CytoregError(f"{path}: schema '{results.get('schema')}' is not cytoreg/results/v1")
        run = path.parent
        board.runs.append(run)
        board.learning_curves += results.get("learning_curves") or []
        for name, info in results["tasks"].items():
            old = board.tasks.get(name)
            if old is not None and old.get("spec_hash") != info.get("spec_hash"):
                board.notes.append(f"task '{name}' has a different spec in {run} than in an earlier run "
                                   f"(spec hash {old.get('spec_hash')} → {info.get('spec_hash')}); the later is shown")
            board.tasks[name] = {**info, "_run": str(run)}
        for ev in results["evaluations"]:
            key = (ev["task"], ev["setting"], ev["model"])
            if key in board.entries:
                board.notes.append(f"{ev['model']} on {column_name(key[:2])}: {run} overrides "
                                   f"{board.entries[key].run}")
            board.entries[key] = Entry(*key, evaluation=ev, run=run)
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

    def text(self, digits: int = 3) -> str:
        if self.value is None:
            return "—"
        s = f"{self.value:.{digits}f}"
        if self.low is not None and self.high is not None:
            s += f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return s


@dataclass
class Row:
    name: str
    kind: str                      # "model", "baseline" or "reference"
    cells: list[Cell]
    mean_rank: float | None = None

    @property
    def complete(self) -> bool:
        return all(c.value is not None for c in self.cells)


@dataclass
class Table:
    metric: str
    columns: list[tuple[str, str]]
    rows: list[Row]
    notes: list[str]


def build_table(board: Board, metric: str) -> Table:
    from scipy.stats import rankdata

    cols = board.columns
    notes = list(board.notes)
    rows: list[Row] = []
    for m in board.models:
        cells = []
        for t, s in cols:
            e = board.entries.get((t, s, m))
            if e is None:
                cells.append(Cell(None))
                continue
            ci = e.evaluation.get("ci", {}).get(metric) or {}
            cells.append(Cell(metric_value(e.evaluation, metric), ci.get("low"), ci.get("high")))
        rows.append(Row(m, "model", cells))
    if not any(c.value is not None for r in rows for c in r.cells):
        known = sorted({k for e in board.entries.values() for k, v in e.evaluation.get("metrics", {}).items()
                        if isinstance(v, (int, float))})
        raise CytoregError(f"no evaluation has the metric '{metric}'; scalar metrics in these runs: {', '.join(known)}")
    lower = metric in LOWER_IS_BETTER
    for j in range(len(cols)):
        vals = [r.cells[j].value for r in rows if r.cells[j].value is not None]
        if vals:
            best = min(vals) if lower else max(vals)
            for r in rows:
                r.cells[j].best = r.cells[j].value == best
    complete = [r for r in rows if r.complete]
    if complete and cols:
        for j in range(len(cols)):
            vals = [r.cells[j].value for r in complete]
            ranks = rankdata(vals if lower else [-v for v in vals], method="average")
            for r, rank in zip(complete, ranks):
                r.mean_rank = (r.mean_rank or 0.0) + float(rank) / len(cols)
    incomplete = [r.name for r in rows if not r.complete]
    if incomplete:
        missing = {r.name: [column_name(c) for c, cell in zip(cols, r.cells) if cell.value is None] for r in rows
                   if not r.complete}
        notes.append("mean rank is over complete rows only; incomplete: " +
                     "; ".join(f"{name} (missing {', '.join(cs)})" for name, cs in missing.items()))
    # chance level and the papers' numbers, as their own rows
    chance_field = CHANCE.get(metric)
    if chance_field:
        cells = [Cell(_num(board.tasks.get(t, {}).get("baselines", {}).get(chance_field))) for t, _ in cols]
        if any(c.value is not None for c in cells):
            rows.append(Row(f"chance ({chance_field}, expected)", "baseline", cells))
    refs: dict[str, list[Cell]] = {}
    for j, (t, _) in enumerate(cols):
        ref = board.tasks.get(t, {}).get("reference") or {}
        values = dict(ref.get("values") or {}) if ref.get("metric") == metric else {}
        if metric == "f1_weighted" and ref.get("random_f1_weighted") is not None:
            values["random baseline"] = ref["random_f1_weighted"]
        for name, v in values.items():
            refs.setdefault(f"paper: {name}", [Cell(None) for _ in cols])[j] = Cell(_num(v))
    rows += [Row(name, "reference", cells) for name, cells in refs.items()]
    return Table(metric, cols, rows, notes)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def render_markdown(table: Table, digits: int = 3) -> str:
    head = ["model", *[column_name(c) for c in table.columns], "mean rank"]
    lines = [f"**{table.metric}** (95% bootstrap CI in brackets; best per column in bold)", "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in table.rows:
        name = r.name if r.kind == "model" else f"*{r.name}*"
        cells = [f"**{c.text(digits)}**" if c.best and r.kind == "model" else c.text(digits) for c in r.cells]
        rank = f"{r.mean_rank:.2f}" if r.mean_rank is not None else ("—" if r.kind == "model" else "")
        lines.append("| " + " | ".join([name, *cells, rank]) + " |")
    if table.notes:
        lines += [""] + [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


TIDY_COLUMNS = ["task", "setting", "model", "metric", "value", "ci_low", "ci_high", "n", "run"]


def render_csv(board: Board) -> str:
    """One row per task × setting × model × scalar metric (tidy, for pandas)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TIDY_COLUMNS)
    for (t, s, m), e in board.entries.items():
        for metric, v in e.evaluation.get("metrics", {}).items():
            v = _num(v)
            if v is None:
                continue
            ci = e.evaluation.get("ci", {}).get(metric) or {}
            w.writerow([t, s, m, metric, repr(v), _fmt(ci.get("low")), _fmt(ci.get("high")), e.evaluation.get("n"),
                        str(e.run)])
    return buf.getvalue()


def _fmt(v: Any) -> str:
    return "" if v is None else repr(float(v))


def write_leaderboard(dirs: list[Path], out: Path, metric: str = "f1_weighted",
                      formats: tuple[str, ...] = ("md", "csv", "html")) -> dict[str, Path]:
    board = load_runs(dirs)
    table = build_table(board, metric)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if "md" in formats:
        written["md"] = out / "leaderboard.md"
        text = render_markdown(table)
        if board.learning_curves:
            from cytoreg.finetune.curves import render_markdown as curves_markdown

            text += "\n" + curves_markdown(board.learning_curves)
        written["md"].write_text(text)
    if "csv" in formats:
        written["csv"] = out / "leaderboard.csv"
        written["csv"].write_text(render_csv(board))
    if "html" in formats:
        from cytoreg.report.html import render_html

        written["html"] = render_html(board, table, out)
    return written
