"""The static HTML leaderboard: one ``index.html`` that works offline (inline CSS and JS, no CDN),
PNG plots drawn with matplotlib under ``img/``, thumbnails of misclassified images under
``thumbs/``. Per task × model × setting: the row-normalised confusion matrix, per-class F1 bars,
a reliability diagram when the model gave probabilities, label-efficiency curves when the
evaluation has them, and the misclassified examples with their ``samples.jsonl`` rows."""
from __future__ import annotations

import hashlib
import html
import json
import os
from pathlib import Path

from cytoreg.errors import CytoregError
from cytoreg.report.leaderboard import Board, Entry, Table, column_name

MAX_EXAMPLES = 12
THUMB = 128

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table.lb{border-collapse:collapse;margin:12px 0}
table.lb th,table.lb td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
table.lb th{background:#f0f0f0;cursor:pointer;user-select:none}
table.lb td:first-child,table.lb th:first-child{text-align:left}
tr.baseline td,tr.reference td{color:#666;font-style:italic;background:#fafafa}
td.best{font-weight:bold;background:#e6f4ea}
.ci{color:#777;font-size:.85em}
.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.figs img.plot{max-width:560px;border:1px solid #ddd}
.ex{display:inline-block;width:150px;vertical-align:top;margin:4px;font-size:.8em}
.ex img{width:128px;height:128px;object-fit:contain;border:1px solid #ccc}
details pre{white-space:pre-wrap;font-size:.75em;max-width:600px}
.notes li{color:#8a4b00}
"""

JS = """
document.querySelectorAll('table.lb th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var tb = th.closest('table').tBodies[0];
    var rows = Array.from(tb.rows).filter(function(r){return r.classList.contains('model');});
    var rest = Array.from(tb.rows).filter(function(r){return !r.classList.contains('model');});
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x === undefined || y === undefined) { x = a.cells[col].textContent; y = b.cells[col].textContent; return asc ? x.localeCompare(y) : y.localeCompare(x); }
      x = x === '' ? NaN : parseFloat(x); y = y === '' ? NaN : parseFloat(y);
      if (isNaN(x)) return 1; if (isNaN(y)) return -1;
      return asc ? x - y : y - x;
    });
    rows.concat(rest).forEach(function(r){ tb.appendChild(r); });
  });
});
"""


def _slug(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise CytoregError("the HTML report draws its plots with matplotlib: pip install 'cytoreg[report]', or "
                           "use --format md,csv") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, title: str, path: Path) -> None:
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_confusion(cm: dict, title: str, path: Path) -> None:
    import numpy as np

    plt = _pyplot()
    m = np.asarray(cm["matrix"], dtype=float)
    cols = cm.get("columns") or cm["labels"]
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n_rows, n_cols = norm.shape
    size = max(4.0, 0.42 * max(n_rows, n_cols) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n_cols), labels=[_short(c) for c in cols], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), labels=[_short(c) for c in cm["labels"]], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if max(n_rows, n_cols) <= 15:
        for i in range(n_rows):
            for j in range(n_cols):
                if m[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    _finish(plt, fig, ax, title, path)


def plot_per_class_f1(per_class: dict, title: str, path: Path) -> None:
    plt = _pyplot()
    labels = list(per_class)
    f1 = [per_class[lab]["f1"] for lab in labels]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(labels) + 1.2))
    ax.barh(range(len(labels)), f1, color="#4c78a8")
    ax.set_yticks(range(len(labels)), labels=[f"{_short(lab)} (n={per_class[lab]['support']})" for lab in labels],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    _finish(plt, fig, ax, title, path)


def reliability(rows: list[dict], bins: int = 10) -> list[dict] | None:
    """Per equal-width confidence bin: mean confidence, accuracy and count (top-1 probability)."""
    pts = []
    for r in rows:
        if isinstance(r.get("response"), dict) and r["response"]:
            conf = max(r["response"].values())
            pts.append((conf, bool(r["correct"])))
    if not pts:
        return None
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        sel = [(c, ok) for c, ok in pts if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if sel:
            out.append({"lo": lo, "hi": hi, "n": len(sel), "confidence": sum(c for c, _ in sel) / len(sel),
                        "accuracy": sum(ok for _, ok in sel) / len(sel)})
    return out


def plot_reliability(bins: list[dict], title: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], "--", color="#999", lw=1)
    ax.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["accuracy"] for b in bins],
           width=[b["hi"] - b["lo"] for b in bins], edgecolor="#333", color="#72b7b2", alpha=0.8)
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#e45756", ms=4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top-1 probability")
    ax.set_ylabel("accuracy")
    _finish(plt, fig, ax, title, path)


def plot_curves(curves: dict[str, list[dict]], title: str, path: Path) -> None:
    """Label-efficiency curves: {name: [{"x": n, "value": v, "sd": s}, ...]}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, pts in curves.items():
        xs = [p["x"] for p in pts]
        ys = [p["value"] for p in pts]
        sd = [p.get("sd") or 0.0 for p in pts]
        ax.errorbar(xs, ys, yerr=sd, marker="o", ms=3, capsize=2, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("training images per class")
    ax.set_ylabel("metric")
    ax.legend(fontsize=7)
    _finish(plt, fig, ax, title, path)


def plot_confidence(rows: list[dict], title: str, path: Path) -> bool:
    """Self-reported confidence (seed scale 1 very confident … 5 very unconfident), correct vs wrong."""
    rated = [r for r in rows if r.get("confidence") is not None]
    if not rated:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    levels = range(1, 6)
    for k, (name, ok, color) in enumerate((("correct", True, "#54a24b"), ("wrong", False, "#e45756"))):
        counts = [sum(1 for r in rated if r["confidence"] == lv and bool(r.get("correct")) == ok) for lv in levels]
        ax.bar([lv + (k - 0.5) * 0.38 for lv in levels], counts, width=0.38, label=name, color=color)
    ax.set_xticks(list(levels), labels=["very\nconfident", "confident", "neutral", "not\nconfident", "very\nunconfident"],
                  fontsize=7)
    ax.set_ylabel("answers")
    ax.legend(fontsize=8)
    _finish(plt, fig, ax, title, path)
    return True


def plot_importance(by_class: dict[str, dict], title: str, path: Path) -> bool:
    """Mean self-reported feature importance per predicted class (correct answers), seed A's Fig. 4A."""
    import numpy as np

    classes = [c for c, t in by_class.items() if t]
    if not classes:
        return False
    features = list(by_class[classes[0]])
    m = np.array([[by_class[c][f]["mean"] if by_class[c][f]["mean"] is not None else np.nan for c in classes]
                  for f in features], dtype=float)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 * len(classes) + 4.5, 0.32 * len(features) + 1.8))
    im = ax.imshow(m, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(classes)), labels=[_short(c, 20) for c in classes], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(features)), labels=[_short(f, 34) for f in features], fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mean score (of 100)")
    _finish(plt, fig, ax, title, path)
    return True


def _short(label: str, n: int = 38) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _samples(run: Path) -> list[tuple[int, dict]]:
    path = run / "samples.jsonl"
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                out.append((i, json.loads(line)))
    return out


def _thumbnail(src: str | None, dest: Path) -> bool:
    if not src or not Path(src).exists():
        return False
    if dest.exists():
        return True
    from cytoreg.tasks.samples import open_image

    try:
        img = open_image(Path(src).read_bytes(), src).convert("RGB")
    except Exception:
        return False
    img.thumbnail((THUMB, THUMB))
    img.save(dest, "JPEG", quality=85)
    return True


def _spread(rows: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """Misclassified rows, round-robin over true labels (each label's rows by id), so the first
    examples shown cover many classes rather than the alphabetically first one."""
    by_label: dict[str, list] = {}
    for item in sorted(rows, key=lambda x: x[1]["id"]):
        by_label.setdefault(str(item[1].get("label")), []).append(item)
    out, queues = [], [by_label[k] for k in sorted(by_label)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def _cell_html(c, best_marks: bool) -> str:
    if c.value is None:
        return '<td data-v="">—</td>'
    ci = f' <span class="ci">[{c.low:.3f}, {c.high:.3f}]</span>' if c.low is not None and c.high is not None else ""
    cls = ' class="best"' if c.best and best_marks else ""
    return f'<td{cls} data-v="{c.value!r}">{c.value:.3f}{ci}</td>'


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["model", *[column_name(c) for c in table.columns], "mean rank"])
    body = []
    for r in table.rows:
        cells = "".join(_cell_html(c, r.kind == "model") for c in r.cells)
        rank = f'<td data-v="{r.mean_rank!r}">{r.mean_rank:.2f}</td>' if r.mean_rank is not None else '<td data-v="">—</td>'
        body.append(f'<tr class="{r.kind}"><td>{html.escape(r.name)}</td>{cells}{rank}</tr>')
    return f'<table class="lb" id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _entry_section(e: Entry, out: Path, samples: list[tuple[int, dict]]) -> str:
    ev = e.evaluation
    title = f"{e.model} · {column_name((e.task, e.setting))}"
    slug = _slug(e.task, e.setting, e.model, str(e.run))
    figs = []
    metrics = ev.get("metrics", {})
    if isinstance(metrics.get("confusion_matrix"), dict):
        p = out / "img" / f"cm-{slug}.png"
        plot_confusion(metrics["confusion_matrix"], title, p)
        figs.append(f'<img class="plot confusion" alt="confusion matrix {html.escape(title)}" src="img/{p.name}">')
    if isinstance(metrics.get("per_class"), dict) and metrics["per_class"]:
        p = out / "img" / f"f1-{slug}.png"
        plot_per_class_f1(metrics["per_class"], f"per-class F1 · {title}", p)
        figs.append(f'<img class="plot perclass" alt="per-class F1 {html.escape(title)}" src="img/{p.name}">')
    rows = [(i, r) for i, r in samples if r.get("task") == e.task and r.get("model") == e.model
            and r.get("setting") == e.setting]
    first_try = [r for _, r in rows if r.get("try", 0) == 0]
    rel = reliability(first_try)
    if rel:
        p = out / "img" / f"rel-{slug}.png"
        plot_reliability(rel, f"reliability · {title}", p)
        figs.append(f'<img class="plot reliability" alt="reliability diagram {html.escape(title)}" src="img/{p.name}">')
    p = out / "img" / f"conf-{slug}.png"
    if isinstance(metrics.get("confidence"), dict) and plot_confidence(first_try, f"confidence · {title}", p):
        figs.append(f'<img class="plot confidence" alt="confidence {html.escape(title)}" src="img/{p.name}">')
    fi = metrics.get("feature_importance")
    p = out / "img" / f"fi-{slug}.png"
    if isinstance(fi, dict) and plot_importance(fi.get("correct_by_predicted_class") or {},
                                                f"feature importance (correct answers) · {title}", p):
        figs.append(f'<img class="plot importance" alt="feature importance {html.escape(title)}" src="img/{p.name}">')
    curves = (ev.get("probe") or {}).get("curves")
    if isinstance(curves, dict) and any(curves.values()):
        p = out / "img" / f"curve-{slug}.png"
        plot_curves(curves, f"label efficiency · {title}", p)
        figs.append(f'<img class="plot curve" alt="label-efficiency curve {html.escape(title)}" src="img/{p.name}">')
    wrong = _spread([(i, r) for i, r in rows if r.get("try", 0) == 0 and not r.get("correct")])
    samples_rel = os.path.relpath(e.run / "samples.jsonl", out)
    examples = []
    for line, r in wrong[:MAX_EXAMPLES]:
        thumb = out / "thumbs" / f"{_slug(str(r.get('image')))}.jpg"
        img = (f'<img alt="{html.escape(r["id"])}" src="thumbs/{thumb.name}">' if _thumbnail(r.get("image"), thumb)
               else '<div class="noimg">(image not found)</div>')
        pred = r.get("parsed") or ("error" if r.get("error") else "invalid")
        examples.append(
            f'<div class="ex">{img}<br>{html.escape(_short(r["id"], 30))}<br>true: {html.escape(str(r["label"]))}'
            f'<br>pred: {html.escape(str(pred))}<details><summary><a href="{html.escape(samples_rel)}">samples.jsonl'
            f'</a> line {line}</summary><pre>{html.escape(json.dumps(r, ensure_ascii=False, indent=1))}</pre>'
            f'</details></div>')
    more = f"<p>{len(wrong) - MAX_EXAMPLES} more misclassified in samples.jsonl</p>" if len(wrong) > MAX_EXAMPLES else ""
    ex_html = (f"<h4>misclassified ({len(wrong)} of {len(first_try)})"
               f"</h4>{''.join(examples)}{more}") if wrong else "<p>no misclassified samples</p>"
    return (f'<section class="entry" id="e-{slug}"><h3>{html.escape(title)}</h3><p>n = {ev.get("n")}, run '
            f'{html.escape(str(e.run))}</p><div class="figs">{"".join(figs)}</div>{ex_html}</section>')


def render_html(board: Board, table: Table, out: Path) -> Path:
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "thumbs").mkdir(exist_ok=True)
    samples = {run: _samples(run) for run in dict.fromkeys(e.run for e in board.entries.values())}
    sections = []
    for col in board.columns:
        parts = [_entry_section(board.entries[(col[0], col[1], m)], out, samples[board.entries[(col[0], col[1], m)].run])
                 for m in board.models if (col[0], col[1], m) in board.entries]
        sections.append(f"<h2>{html.escape(column_name(col))}</h2>{''.join(parts)}")
    if board.learning_curves:
        from cytoreg.finetune.curves import html_section

        sections.insert(0, html_section(board.learning_curves, out, _pyplot, _finish))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    runs = "".join(f"<li>{html.escape(str(r))}</li>" for r in board.runs)
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cytoreg leaderboard: '
            f'{html.escape(table.metric)}</title><style>{CSS}</style></head><body>'
            f"<h1>cytoreg leaderboard</h1><p>metric: <b>{html.escape(table.metric)}</b> (95% bootstrap CI); click a "
            f"column header to sort. Baseline and paper rows stay below the models.</p>{_table_html(table)}"
            f'<ul class="notes">{notes}</ul><details><summary>runs</summary><ul>{runs}</ul></details>'
            f"{''.join(sections)}<script>{JS}</script></body></html>")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
