"""The combined learning curve: at each n, the fine-tuned model (one model per n) and each head
(the probe's first-repeat fit on the same nested subset), scored on the same test ids, with a
paired bootstrap of the difference (seed A: 20,000 resamples of weighted F1, DinoBloom vs GPT-4o)."""
from __future__ import annotations

import json
from pathlib import Path

from cytoreg.metrics import statistics
from cytoreg.metrics.classification import Predictions, compute


def _top1(samples_path: Path) -> dict[tuple[str, str, str], dict[str, tuple[str, str | None]]]:
    """(task, model, setting) -> id -> (label, parsed) for first tries."""
    out: dict[tuple[str, str, str], dict] = {}
    if not samples_path.exists():
        return out
    with samples_path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                r = json.loads(line)
                if r.get("try", 0) == 0:
                    out.setdefault((r["task"], r["model"], r["setting"]), {})[r["id"]] = (r["label"], r.get("parsed"))
    return out


def learning_curves(results: dict, samples_path: Path, task: str, finetuned: dict[str, dict[int, str]],
                    train_ids_sha256: str, metric: str, resamples: int, seed: int = 0,
                    confidence: float = 0.95) -> list[dict]:
    """One curve per task view × base model: per n the fine-tuned model's metric and CI, and per
    head (model × feature key) its value on the same ids and the paired bootstrap (VLM − head)."""
    top1 = _top1(samples_path)
    views = [t for t in results["tasks"] if t == task or t.startswith(task + ".")]
    evals = {(e["task"], e["model"], e["setting"]): e for e in results["evaluations"]}
    out = []
    for view in views:
        labels = results["tasks"][view]["labels"]
        heads = [e for e in results["evaluations"] if e["task"] == view and e["setting"].startswith("probe")
                 and (e.get("probe") or {}).get("curve_predictions")]
        for base, by_n in finetuned.items():
            points = []
            for n, model in sorted(by_n.items()):
                ev = evals.get((view, model, "zero_shot"))
                recs = top1.get((view, model, "zero_shot"))
                if ev is None or recs is None:
                    continue
                ci = (ev.get("ci") or {}).get(metric) or {}
                point = {"n": n, "model": model, "value": ev["metrics"].get(metric), "low": ci.get("low"),
                         "high": ci.get("high"), "n_test": ev["n"], "heads": []}
                for h in heads:
                    cp = h["probe"]["curve_predictions"]
                    pred = cp["pred"].get(str(n))
                    if pred is None:
                        continue
                    by_id = dict(zip(cp["ids"], pred))
                    ids = [i for i in recs if i in by_id]
                    y = [recs[i][0] for i in ids]
                    a = Predictions(y, [recs[i][1] for i in ids], labels)
                    b = Predictions(y, [by_id[i] for i in ids], labels)
                    row = {"model": h["model"], "setting": h["setting"], "n_test": len(ids),
                           "value": compute([metric], b)[metric], "vlm_value": compute([metric], a)[metric],
                           "same_train_images": cp.get("train_ids_sha256") == train_ids_sha256}
                    if ids and resamples > 0:
                        row["paired_bootstrap"] = {"a": model, "b": h["model"], "metric": metric,
                                                   **statistics.paired_bootstrap(a, b, metric, resamples, seed,
                                                                                 confidence)}
                    point["heads"].append(row)
                points.append(point)
            if points:
                out.append({"task": view, "base_model": base, "metric": metric, "points": points})
    return out


def p_text(pb: dict) -> str:
    """p from a paired bootstrap; 0 of R resamples on the other side reads p < 1/R."""
    return f"p<{1 / pb['resamples']:.2g}" if pb["p_value"] == 0 else f"p={pb['p_value']:.3g}"


def from_board(board) -> list[dict]:
    """Every learning curve in a leaderboard's runs (``cytoreg finetune`` writes them)."""
    return [c for res in getattr(board, "results", {}).values() for c in (res.get("learning_curves") or [])]


def render_markdown(curves: list[dict], digits: int = 3, esc=str) -> str:
    """One table per curve: n, the fine-tuned model with its CI, each head, difference, CI and p;
    ``esc`` escapes names for Markdown."""
    lines = []
    for c in curves:
        heads = sorted({(h["model"], h["setting"]) for p in c["points"] for h in p["heads"]})
        lines += [f"### learning curve: {esc(c['base_model'])} fine-tuned vs heads on {esc(c['task'])} "
                  f"({esc(c['metric'])})", ""]
        head = ["n", f"{esc(c['base_model'])} fine-tuned"] + [f"{esc(m)} [{esc(s)}] (Δ, 95% CI, p)" for m, s in heads]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---:"] * len(head)) + "|"]
        for p in c["points"]:
            v = "—" if p["value"] is None else f"{p['value']:.{digits}f}"
            if p.get("low") is not None:
                v += f" [{p['low']:.{digits}f}, {p['high']:.{digits}f}]"
            cells = [str(p["n"]), v]
            for m, s in heads:
                h = next((h for h in p["heads"] if (h["model"], h["setting"]) == (m, s)), None)
                if h is None:
                    cells.append("—")
                    continue
                pb = h.get("paired_bootstrap")
                txt = f"{h['value']:.{digits}f}"
                if pb:
                    txt += (f" (Δ {pb['difference']:+.{digits}f} [{pb['low']:+.{digits}f}, {pb['high']:+.{digits}f}], "
                            f"{p_text(pb)})")
                cells.append(txt)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if curves:
        lines.append("Δ = fine-tuned VLM − head on the same test images (paired bootstrap); heads are the probe's "
                     "first-repeat fit on the same nested subset at each n; n = 0 is the base model zero-shot.")
    return "\n".join(lines) + "\n"


def html_section(curves: list[dict], out: Path, pyplot, finish) -> str:
    """The learning curves for the HTML report: a plot per curve (fine-tuned model with its CI, each
    head; * where the paired bootstrap gives p < 0.05) and its table."""
    import hashlib
    import html

    parts = ["<h2>learning curves: fine-tuned VLMs vs heads</h2>"]
    for c in curves:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.6, 3.8))
        pts = [p for p in c["points"] if p["n"] > 0 and p["value"] is not None]
        xs = [p["n"] for p in pts]
        ys = [p["value"] for p in pts]
        err = [[p["value"] - (p["low"] if p.get("low") is not None else p["value"]) for p in pts],
               [(p["high"] if p.get("high") is not None else p["value"]) - p["value"] for p in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", ms=3, capsize=2, label=f"{c['base_model']} fine-tuned")
        heads = sorted({(h["model"], h["setting"]) for p in pts for h in p["heads"]})
        for m, s in heads:
            hp = [(p["n"], h) for p in pts for h in p["heads"] if (h["model"], h["setting"]) == (m, s)]
            ax.plot([n for n, _ in hp], [h["value"] for _, h in hp], marker="s", ms=3, ls="--", label=f"{m} [{s}]")
            for n, h in hp:
                if (h.get("paired_bootstrap") or {}).get("p_value", 1) < 0.05:
                    ax.annotate("*", (n, h["value"]), textcoords="offset points", xytext=(0, 4), ha="center")
        zero = next((p for p in c["points"] if p["n"] == 0 and p["value"] is not None), None)
        if zero:
            ax.axhline(zero["value"], color="#999", lw=1, ls=":", label=f"{c['base_model']} zero-shot")
        ax.set_xscale("log")
        ax.set_xlabel("training images per class")
        ax.set_ylabel(c["metric"])
        ax.legend(fontsize=7)
        slug = hashlib.sha256(f"{c['task']}|{c['base_model']}".encode()).hexdigest()[:12]
        path = out / "img" / f"ftcurve-{slug}.png"
        finish(plt, fig, ax, f"{c['task']}: {c['base_model']} fine-tuned vs heads", path)
        rows = []
        for p in c["points"]:
            cells = [str(p["n"]), "—" if p["value"] is None else f"{p['value']:.3f}"]
            for m, s in heads:
                h = next((h for h in p["heads"] if (h["model"], h["setting"]) == (m, s)), None)
                pb = (h or {}).get("paired_bootstrap")
                cells.append("—" if h is None else f"{h['value']:.3f}" + (
                    f" (Δ {pb['difference']:+.3f} [{pb['low']:+.3f}, {pb['high']:+.3f}], {p_text(pb)})"
                    if pb else ""))
            rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
        head = "".join(f"<th>{html.escape(x)}</th>" for x in
                       ["n", f"{c['base_model']} fine-tuned"] + [f"{m} [{s}] (Δ, 95% CI, p)" for m, s in heads])
        parts.append(f'<section class="curve"><div class="figs"><img class="plot ftcurve" alt="learning curve '
                     f'{html.escape(c["task"])}" src="img/{path.name}"></div><table class="lb"><thead><tr>{head}'
                     f'</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')
    parts.append("<p>Δ = fine-tuned VLM − head on the same test images (paired bootstrap); heads are the probe's "
                 "first-repeat fit on the same nested subset at each n.</p>")
    return "".join(parts)
