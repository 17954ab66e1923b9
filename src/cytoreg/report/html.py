"""The static HTML leaderboard: one ``index.html`` that works offline (inline CSS and JS, no CDN),
PNG plots drawn with matplotlib under ``img/``, thumbnails of misclassified images under
``thumbs/``. Per task × model × setting: the row-normalised confusion matrix, per-class F1 bars,
a reliability diagram when the model gave probabilities, label-efficiency curves when the
evaluation has them, and the misclassified examples with their ``samples.jsonl`` rows."""
from __future__ import annotations

import hashlib
import html
import json
import urllib.parse
from pathlib import Path

from cytoreg.errors import CytoregError
from cytoreg.report.board import Board, Entry, Table, column_name

MAX_EXAMPLES = 12
THUMB = 128
MAX_MATRIX_LABELS = 30  # confusion-matrix plots beyond this show the most confused classes
MAX_BAR_LABELS = 40     # per-class F1 bars beyond this show the lowest-F1 classes

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table.lb{border-collapse:collapse;margin:12px 0}
table.lb th,table.lb td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
table.lb th{background:#f0f0f0;cursor:pointer;user-select:none}
table.lb td:first-child,table.lb th:first-child{text-align:left}
tr.baseline td,tr.reference td{color:#666;font-style:italic;background:#fafafa}
td.best{font-weight:bold;background:#e6f4ea}
td.incomplete,td.mixed{color:#999;background:#f4f4f4}
td.tied{background:#f3f9f4}
.q{color:#888;font-size:.75em}
.ci{color:#777;font-size:.85em}
.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.figs img.plot{max-width:560px;border:1px solid #ddd}
.ex{display:inline-block;width:150px;vertical-align:top;margin:4px;font-size:.8em}
.ex img{width:128px;height:128px;object-fit:contain;border:1px solid #ccc}
details pre{white-space:pre-wrap;font-size:.75em;max-width:600px}
.notes li{color:#8a4b00}
.tabs button{margin-right:4px}
table.meta td,table.eff td,table.groups td{text-align:left}
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
document.querySelectorAll('button.tab').forEach(function(b){
  b.addEventListener('click', function(){
    document.querySelectorAll('div.pane').forEach(function(p){ p.hidden = p.dataset.pane !== b.dataset.tab; });
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
    matplotlib.rcParams["text.parse_math"] = False  # labels are data: `$\\frac{1}{$` is text, not TeX
    matplotlib.rcParams["text.usetex"] = False
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, title: str, path: Path) -> None:
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def top_confused(cm: dict, k: int = MAX_MATRIX_LABELS) -> tuple[dict, str | None]:
    """The confusion matrix cut to the ``k`` true classes with the most errors (ties: the larger
    class first, then label order), with one column summing the answers for all other labels;
    shares stay shares of the full row. Returns (matrix dict, note) — note None when uncut."""
    import numpy as np

    labels = list(cm["labels"])
    if len(labels) <= k:
        return cm, None
    m = np.asarray(cm["matrix"], dtype=np.int64)
    cols = list(cm.get("columns") or labels)
    n = len(labels)
    errors = m.sum(axis=1) - np.diag(m[:, :n])
    order = sorted(range(n), key=lambda i: (-int(errors[i]), -int(m[i].sum()), i))[:k]
    keep = sorted(order)
    rest = [j for j in range(n) if j not in set(keep)]
    sub = np.concatenate([m[keep][:, keep], m[keep][:, rest].sum(axis=1, keepdims=True), m[keep][:, n:]], axis=1)
    out = {"labels": [labels[i] for i in keep], "columns": [labels[i] for i in keep] + [f"{len(rest)} other labels"]
           + cols[n:], "matrix": sub.tolist()}
    return out, (f"confusion matrix: the {k} of {n} true classes with the most errors; the full matrix is in "
                 "results.json")


def plot_confusion(cm: dict, title: str, path: Path) -> str | None:
    """Row-normalised confusion matrix; more than MAX_MATRIX_LABELS classes are cut to the most
    confused ones (a 1,000-label matrix would need a 38,000-pixel square). Returns the note."""
    import numpy as np

    cm, note = top_confused(cm)
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
    return note


def plot_per_class_f1(per_class: dict, title: str, path: Path) -> str | None:
    """Per-class F1 bars; beyond MAX_BAR_LABELS classes, the lowest-F1 ones. Returns the note."""
    plt = _pyplot()
    labels = list(per_class)
    note = None
    if len(labels) > MAX_BAR_LABELS:
        worst = sorted(range(len(labels)), key=lambda i: (_f1_of(per_class[labels[i]]), i))[:MAX_BAR_LABELS]
        note = (f"per-class F1: the {MAX_BAR_LABELS} of {len(labels)} classes with the lowest F1; all are in "
                "results.json")
        labels = [labels[i] for i in sorted(worst)]
    f1 = [_f1_of(per_class[lab]) for lab in labels]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(labels) + 1.2))
    ax.barh(range(len(labels)), f1, color="#4c78a8")
    ax.set_yticks(range(len(labels)), labels=[f"{_short(lab)} (n={per_class[lab].get('support')})" for lab in labels],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    _finish(plt, fig, ax, title, path)
    return note


def _f1_of(row: dict) -> float:
    v = row.get("f1") if isinstance(row, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def reliability(rows: list[dict], bins: int = 10) -> list[dict] | None:
    """Per equal-width confidence bin: mean confidence, accuracy and count (top-1 probability)."""
    pts = []
    for r in rows:
        if isinstance(r.get("response"), dict) and r["response"] and None not in r["response"].values():
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
    from cytoreg.report.readers import iter_samples

    return list(iter_samples(path))


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
    for item in sorted(rows, key=lambda x: str(x[1].get("id"))):
        by_label.setdefault(str(item[1].get("label")), []).append(item)
    out, queues = [], [by_label[k] for k in sorted(by_label)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def _cell_html(c, best_marks: bool) -> str:
    if c.value is None:
        return '<td class="incomplete" data-v="">stopped</td>' if c.stopped else '<td data-v="">—</td>'
    ci = f' <span class="ci">[{c.low:.3f}, {c.high:.3f}]</span>' if c.low is not None and c.high is not None else ""
    classes = [name for name, on in (("best", c.best and best_marks), ("incomplete", c.incomplete),
                                     ("mixed", c.mixed), ("tied", c.tied)) if on]
    cls = f' class="{" ".join(classes)}"' if classes else ""
    quals = c.qualifiers()
    q = f'<br><span class="q">{html.escape(", ".join(quals))}</span>' if quals else ""
    return f'<td{cls} data-v="{c.value!r}">{c.value:.3f}{ci}{q}</td>'


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["model", *[column_name(c) for c in table.columns], "mean rank"])
    body = []
    for r in table.rows:
        cells = "".join(_cell_html(c, r.kind in ("model", "baseline")) for c in r.cells)
        rank = f'<td data-v="{r.mean_rank!r}">{r.mean_rank:.2f}</td>' if r.mean_rank is not None else '<td data-v="">—</td>'
        body.append(f'<tr class="{r.kind}"><td>{html.escape(r.name)}</td>{cells}{rank}</tr>')
    return f'<table class="lb" id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _entry_section(e: Entry, out: Path, samples: list[tuple[int, dict]], run_label: str = "",
                   copy_images: bool = True) -> str:
    ev = e.evaluation
    title = f"{e.model} · {column_name((e.task, e.setting))}"
    slug = _slug(e.task, e.setting, e.model, run_label or e.run.name)
    figs = []
    metrics = ev.get("metrics", {})
    notes = []
    if isinstance(metrics.get("confusion_matrix"), dict):
        p = out / "img" / f"cm-{slug}.png"
        notes.append(plot_confusion(metrics["confusion_matrix"], title, p))
        figs.append(f'<img class="plot confusion" alt="confusion matrix {html.escape(title)}" src="img/{p.name}">')
    if isinstance(metrics.get("per_class"), dict) and metrics["per_class"]:
        p = out / "img" / f"f1-{slug}.png"
        notes.append(plot_per_class_f1(metrics["per_class"], f"per-class F1 · {title}", p))
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
    browse = "samples.html#" + urllib.parse.urlencode({"task": e.task, "setting": e.setting, "model": e.model})
    examples = []
    for line, r in wrong[:MAX_EXAMPLES]:
        thumb = out / "thumbs" / f"{_slug(str(r.get('image')))}.jpg"
        if not copy_images:
            img = '<div class="noimg">(image not copied: licence)</div>'
        elif _thumbnail(r.get("image"), thumb):
            img = f'<img alt="{html.escape(str(r.get("id")))}" src="thumbs/{thumb.name}">'
        else:
            img = '<div class="noimg">(image not found)</div>'
        pred = r.get("parsed") or ("error" if r.get("error") else "invalid")
        shown = {k: v for k, v in r.items() if k != "image"}  # no machine paths in the page
        examples.append(
            f'<div class="ex">{img}<br>{html.escape(_short(str(r.get("id")), 30))}<br>true: {html.escape(str(r.get("label")))}'
            f'<br>pred: {html.escape(str(pred))}<details><summary>samples.jsonl line {line}</summary><pre>'
            f'{html.escape(json.dumps(shown, ensure_ascii=False, indent=1))}</pre></details></div>')
    plot_notes = "".join(f'<p class="plotnote">{html.escape(n)}</p>' for n in notes if n)
    more = f"<p>{len(wrong) - MAX_EXAMPLES} more misclassified</p>" if len(wrong) > MAX_EXAMPLES else ""
    link = (f'<p><a href="{html.escape(browse)}">browse all {len(first_try)} samples</a> · <a href="'
            f'{html.escape(browse + "&outcome=wrong")}">the {len(wrong)} misclassified</a></p>')
    ex_html = (f"<h4>misclassified ({len(wrong)} of {len(first_try)})"
               f"</h4>{''.join(examples)}{more}") if wrong else "<p>no misclassified samples</p>"
    return (f'<section class="entry" id="e-{slug}"><h3>{html.escape(title)}</h3><p>n = {ev.get("n")}, run '
            f'{html.escape(run_label)}</p><div class="figs">{"".join(figs)}</div>{plot_notes}{link}{ex_html}</section>')


def _tabs(tables: list[Table]) -> str:
    if len(tables) == 1:
        return _table_html(tables[0])
    buttons = "".join(f'<button class="tab" data-tab="{i}">{html.escape(tb.metric)}</button>' for i, tb in enumerate(tables))
    panes = "".join(f'<div class="pane" data-pane="{i}"{"" if i == 0 else " hidden"}>{_table_html(tb)}</div>'
                    for i, tb in enumerate(tables))
    return f'<div class="tabs">{buttons}</div>{panes}'


def _groups_html(groups) -> str:
    if not groups or not any(g.scores for g in groups):
        return ""
    models = list(dict.fromkeys(m for g in groups for m in g.scores))
    head = "".join(f"<th>{html.escape(g.domain)} mean</th><th>{html.escape(g.domain)} win rate</th>" for g in groups)
    body = []
    for m in models:
        cells = ""
        for g in groups:
            s = g.scores.get(m)
            mean = f"{s.mean:.3f} ({s.cells}/{len(g.columns)})" if s and s.mean is not None else "—"
            win = f"{s.win_rate:.2f}" if s and s.win_rate is not None else "—"
            cells += f"<td>{mean}</td><td>{win}</td>"
        body.append(f"<tr><td>{html.escape(m)}</td>{cells}</tr>")
    return (f'<h3>task groups</h3><table class="lb groups"><thead><tr><th>model</th>{head}</tr></thead><tbody>'
            f'{"".join(body)}</tbody></table>')


def _models_html(rows: list[dict]) -> str:
    from cytoreg.report.summaries import MODEL_FIELDS

    head = "".join(f"<th>{f.replace('_', ' ')}</th>" for f in MODEL_FIELDS)
    body = []
    for r in rows:
        cells = []
        for f in MODEL_FIELDS:
            v = r.get(f)
            if f == "homepage" and isinstance(v, str) and v.startswith(("https://", "http://")):
                cells.append(f'<td><a href="{html.escape(v)}">{html.escape(v)}</a></td>')
            else:
                cells.append(f"<td>{html.escape('' if v is None else ('yes' if v is True else 'no' if v is False else str(v)))}</td>")
        body.append(f"<tr><td>{html.escape(r['model'])}</td>{''.join(cells)}</tr>")
    return (f'<h2>models</h2><table class="lb meta"><thead><tr><th>model</th>{head}</tr></thead><tbody>'
            f'{"".join(body)}</tbody></table>')


def _efficiency_html(effs) -> str:
    if not any(e.requests or e.tokens_in or e.latency_p50 is not None for e in effs):
        return ""
    body = "".join(
        f"<tr><td>{html.escape(e.model)}</td><td>{e.requests}</td><td>{e.cached}</td><td>{e.tokens_in}</td>"
        f"<td>{e.tokens_out}</td><td>{'' if e.cost is None else f'{e.cost:.4f} {html.escape(e.currency)}'}</td>"
        f"<td>{'' if e.latency_p50 is None else f'{e.latency_p50:.2f}'}</td>"
        f"<td>{'' if e.latency_p95 is None else f'{e.latency_p95:.2f}'}</td></tr>" for e in effs)
    return ('<h2>efficiency</h2><table class="lb eff"><thead><tr><th>model</th><th>requests sent</th><th>cached</th>'
            '<th>tokens in</th><th>tokens out</th><th>cost (list price)</th><th>latency p50 (s)</th>'
            f'<th>latency p95 (s)</th></tr></thead><tbody>{body}</tbody></table>')


def _provenance_html(prov: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r['run'])}</td><td>{html.escape(str(r['created']))}</td>"
        f"<td>{html.escape(str(r['cytoreg']))}</td><td>{html.escape(str(r['seed']))}</td>"
        f"<td>{html.escape(str(r['limit'] or ''))}</td><td>"
        + html.escape("; ".join(f"{t} {i['spec_hash']} (n={i['n_test']})" for t, i in r["tasks"].items()))
        + "</td><td>" + html.escape("; ".join(f"{m} {h}" for m, h in r["models"].items())) + "</td></tr>"
        for r in prov["runs"])
    return (f'<details class="prov"><summary>provenance: {html.escape(prov["generator"])}, '
            f'{html.escape(prov["created"])}</summary><table class="lb"><thead><tr><th>run</th><th>created</th>'
            '<th>cytoreg</th><th>seed</th><th>limit</th><th>task spec hashes (n)</th><th>model spec hashes</th>'
            f'</tr></thead><tbody>{rows}</tbody></table><p>machine-readable: <a href="provenance.json">'
            'provenance.json</a></p></details>')


def render_html(board: Board, tables: Table | list[Table], out: Path, include_images: bool = False,
                extra: dict | None = None) -> Path:
    """``extra``: pre-computed ``groups`` (per table), ``models``, ``efficiency``, ``provenance``."""
    from cytoreg.report.explorer import may_copy_images

    tables = [tables] if isinstance(tables, Table) else list(tables)
    extra = extra or {}
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "thumbs").mkdir(exist_ok=True)
    samples = {run: _samples(run) for run in dict.fromkeys(e.run for e in board.entries.values())}
    sections = []
    for col in board.columns:
        parts = [_entry_section(board.entries[(col[0], col[1], m)], out, samples[board.entries[(col[0], col[1], m)].run],
                                board.label(board.entries[(col[0], col[1], m)].run),
                                may_copy_images(board, col[0], include_images))
                 for m in board.models if (col[0], col[1], m) in board.entries]
        sections.append(f"<h2>{html.escape(column_name(col))}</h2>{''.join(parts)}")
    from cytoreg.finetune.curves import from_board, html_section  # cytoreg finetune runs

    if from_board(board):
        sections.insert(0, html_section(from_board(board), out, _pyplot, _finish))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in dict.fromkeys(n for tb in tables for n in tb.notes))
    notes += "".join(f"<li>{html.escape(n)}</li>" for n in extra.get("notes", []))
    groups = "".join(_groups_html(g) for g in extra.get("groups", []))
    metrics = ", ".join(tb.metric for tb in tables)
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cytoreg leaderboard: '
            f'{html.escape(metrics)}</title><style>{CSS}</style></head><body>'
            f"<h1>cytoreg leaderboard</h1><p>metrics: <b>{html.escape(metrics)}</b> (95% bootstrap CI; n = samples "
            "scored). Click a column header to sort. Greyed cells are incomplete or on other samples and never "
            'ranked; baselines and paper rows stay below the models. <a href="samples.html">Browse every '
            f"sample</a>.</p>{_tabs(tables)}{groups}"
            f'<ul class="notes">{notes}</ul>{_models_html(extra.get("models", []))}'
            f'{_efficiency_html(extra.get("efficiency", []))}{_provenance_html(extra["provenance"]) if "provenance" in extra else ""}'
            f"{''.join(sections)}<script>{JS}</script></body></html>")
    from cytoreg.report.results import atomic_write

    path = out / "index.html"
    atomic_write(path, page)
    return path
