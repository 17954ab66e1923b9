"""``cytoreg leaderboard``: the Markdown and tidy-CSV renderers of a :class:`~cytoreg.report.board.Table`
and the command's entry point (the HTML page is :mod:`cytoreg.report.html`). What goes into the
table, and the rules that keep it honest, are in :mod:`cytoreg.report.board`."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from cytoreg.report.board import Board, Table, num, build_table, column_name, load_runs

def markdown_cell(c, digits: int = 3) -> str:
    """``**0.812 [0.780, 0.840]** n=407``; incomplete and off-sample cells in italics with the reason."""
    if c.value is None:
        return "—"
    text = f"**{c.text(digits)}**" if c.best else c.text(digits)
    if c.incomplete or c.mixed:
        text = f"*{text}*"
    quals = c.qualifiers()
    return f"{text} ({', '.join(quals)})" if quals else text


def render_markdown(table: Table, digits: int = 3) -> str:
    head = ["model", *[column_name(c) for c in table.columns], "mean rank"]
    lines = [f"**{table.metric}** (95% bootstrap CI in brackets, n = samples scored; best complete, comparable "
             "cell per column in bold)", "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in table.rows:
        name = r.name if r.kind == "model" else f"*{r.name}*"
        cells = [markdown_cell(c, digits) if r.kind in ("model", "baseline") else c.text(digits) for c in r.cells]
        rank = f"{r.mean_rank:.2f}" if r.mean_rank is not None else ("—" if r.kind == "model" else "")
        lines.append("| " + " | ".join([name, *cells, rank]) + " |")
    if table.notes:
        lines += [""] + [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


TIDY_COLUMNS = ["task", "setting", "model", "metric", "value", "ci_low", "ci_high", "n", "coverage", "status",
                "run"]


def render_csv(board: Board) -> str:
    """One row per task × setting × model × scalar metric (tidy, for pandas)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TIDY_COLUMNS)
    for (t, s, m), e in board.entries.items():
        for metric, v in e.evaluation.get("metrics", {}).items():
            v = num(v)
            if v is None:
                continue
            ci = e.evaluation.get("ci", {}).get(metric) or {}
            w.writerow([t, s, m, metric, repr(v), _fmt(ci.get("low")), _fmt(ci.get("high")), e.n,
                        _fmt(e.coverage), e.status, str(e.run)])
    return buf.getvalue()


def _fmt(v: Any) -> str:
    return "" if v is None else repr(float(v))


def write_leaderboard(dirs: list[Path], out: Path, metric: str = "f1_weighted",
                      formats: tuple[str, ...] = ("md", "csv", "html"), allow_mixed: bool = False) -> dict[str, Path]:
    board = load_runs(dirs)
    table = build_table(board, metric, allow_mixed=allow_mixed)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if "md" in formats:
        written["md"] = out / "leaderboard.md"
        written["md"].write_text(render_markdown(table))
    if "csv" in formats:
        written["csv"] = out / "leaderboard.csv"
        written["csv"].write_text(render_csv(board))
    if "html" in formats:
        from cytoreg.report.html import render_html

        written["html"] = render_html(board, table, out)
    return written
