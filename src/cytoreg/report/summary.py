"""The rich table printed at the end of ``cytoreg eval``."""
from __future__ import annotations


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _status(ev: dict) -> str:
    status = ev.get("status", "complete")
    if status == "complete":
        return "complete"
    return f"{status.upper()} {ev.get('coverage', 0):.0%}"


def print_summary(results: dict, console) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="cytoreg results", title_justify="left")
    for col in ("task", "model", "setting", "n", "f1_weighted [95% CI]", "5-fold", "accuracy", "invalid",
                "errors", "coverage", "status", "chance F1w (prior)"):
        table.add_column(col)
    for ev in results["evaluations"]:
        m, ci, folds = ev["metrics"], ev["ci"], ev["folds"]
        f1 = m.get("f1_weighted")
        c = ci.get("f1_weighted", {})
        fs = folds.get("f1_weighted")
        base = results["tasks"][ev["task"]]["baselines"]["random_f1_weighted"]
        n = str(ev["n"]) if ev.get("n_attempted", ev["n"]) == ev["n"] else f"{ev['n']}/{ev['n_attempted']}"
        complete = ev.get("status", "complete") == "complete"
        table.add_row(ev["task"], ev["model"], ev["setting"], n,
                      f"{_fmt(f1)} [{_fmt(c.get('low'))}, {_fmt(c.get('high'))}]" if f1 is not None else "–",
                      f"{_fmt(fs['mean'])} ± {_fmt(fs['sd'])}" if fs else "–",
                      _fmt(m.get("accuracy")), _fmt(m.get("invalid_rate")), str(ev["errors"]),
                      f"{ev.get('coverage', 1.0):.1%}", _status(ev), _fmt(base),
                      style=None if complete else "dim")
    console.print(table)
    if results.get("limit"):
        console.print(f"--limit {results['limit']}: a stratified subset; these numbers are not comparable "
                      "with full runs", style="yellow", markup=False)
    bad = [ev for ev in results["evaluations"] if ev.get("status", "complete") != "complete"]
    if bad:
        need = results.get("config", {}).get("min_coverage", 1.0)
        console.print(Text.assemble((f"{len(bad)} evaluation(s) not complete", "red"), f" (coverage below {need:g}, or "
                                    "the model was stopped): their scores cover only the answered samples and are not "
                                    "final results."))
        for reason in dict.fromkeys(ev["stopped_reason"] for ev in bad if ev.get("stopped_reason")):
            console.print(f"  {reason}", markup=False)
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
