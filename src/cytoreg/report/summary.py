"""The rich table printed at the end of ``cytoreg eval``."""
from __future__ import annotations


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def print_summary(results: dict, console) -> None:
    from rich.table import Table

    table = Table(title="cytoreg results", title_justify="left")
    for col in ("task", "model", "setting", "n", "f1_weighted [95% CI]", "5-fold", "accuracy", "invalid",
                "errors", "random F1w"):
        table.add_column(col)
    for ev in results["evaluations"]:
        m, ci, folds = ev["metrics"], ev["ci"], ev["folds"]
        f1 = m.get("f1_weighted")
        c = ci.get("f1_weighted", {})
        fs = folds.get("f1_weighted")
        base = results["tasks"][ev["task"]]["baselines"]["random_f1_weighted"]
        table.add_row(ev["task"], ev["model"], ev["setting"], str(ev["n"]),
                      f"{_fmt(f1)} [{_fmt(c.get('low'))}, {_fmt(c.get('high'))}]",
                      f"{_fmt(fs['mean'])} ± {_fmt(fs['sd'])}" if fs else "–",
                      _fmt(m.get("accuracy")), _fmt(m.get("invalid_rate")), str(ev["errors"]), _fmt(base))
    console.print(table)
    if results.get("groups"):
        groups = Table(title="task groups (mean over members)", title_justify="left")
        for col in ("group", "model", "setting", "members", "f1_weighted mean", "f1_macro mean", "accuracy mean"):
            groups.add_column(col)
        for g, rows in results["groups"].items():
            for r in rows:
                groups.add_row(g, r["model"], r["setting"], str(len(r["members"])), _fmt(r.get("f1_weighted_mean")),
                               _fmt(r.get("f1_macro_mean")), _fmt(r.get("accuracy_mean")))
        console.print(groups)
    for line in data_notes(results):
        console.print(line, highlight=False)


def data_notes(results: dict) -> list[str]:
    """One line per task that dropped rows or has unusable images (nothing is lost unannounced)."""
    out = []
    for name, task in results.get("tasks", {}).items():
        d = task.get("data") or {}
        errs = (d.get("image_errors") or {}).get("count", 0)
        if not d.get("dropped_total") and not errs:
            continue
        text = f"{name}: {d['rows_seen']} rows seen, {d['kept']} kept"
        if d.get("dropped_total"):
            text += f", {d['dropped_total']} dropped (" + ", ".join(
                f"{k} {v['count']}" for k, v in d["dropped"].items()) + ")"
        if errs:
            text += f"; {errs} sampled image(s) unusable (" + ", ".join(
                f"{k} {n}" for k, n in d["image_errors"]["by_problem"].items()) + "), error records"
        if d.get("suggested_label_map"):
            text += f"; label_map lines to consider: {', '.join(d['suggested_label_map'])}"
        out.append(text + f" (results.json tasks.{name}.data)")
    return out
