"""Expert review of explanations, seed A's protocol, as a round trip:

``export``: from a run's ``samples.jsonl`` (an ``explain`` task, ``free_text``), pick per true
class N correctly and N wrongly classified cells (seeded), shuffle them, and write a blinded
sheet: ``review.html`` (image + the model's explanation, nothing about the label or whether the
model was right) and ``review.csv`` (item, image, explanation, empty ``rating``, ``expert_label``,
``mistakes``). The answer key goes to ``key.json``, which the expert does not get.

``import``: read the filled CSV (ratings 1 excellent, 2 good, 3 fair, 4 poor, 5 misleading),
join it to the key and compute the seed's summary: mean ± SD of the rating for correct and
wrong predictions, the share rated poor or misleading (4–5), and — where the model's
confidence was read — its correlation with the rating."""
from __future__ import annotations

import csv
import html
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cytoreg.errors import CytoregError
from cytoreg.metrics.statistics import pearson
from cytoreg.report.readers import iter_samples, read_json

SCALE = {1: "excellent", 2: "good", 3: "fair", 4: "poor", 5: "misleading or completely incorrect"}
SHEET_COLUMNS = ["item", "image", "explanation", "rating", "expert_label", "mistakes"]


def spreadsheet_text(text: str) -> str:
    """A model's reply as a CSV cell a spreadsheet shows as text: a leading ``= + - @`` (or tab /
    carriage return) would make Excel or LibreOffice run it as a formula, so it gets a ``'``."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _unguard(text: str) -> str:
    """Undo :func:`spreadsheet_text`'s ``'`` on a cell read back."""
    return text[1:] if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@", "\t", "\r") else text


def _rows(run: Path, task: str, model: str, setting: str) -> list[dict]:
    path = run / "samples.jsonl"
    if not path.exists():
        raise CytoregError(f"no samples.jsonl in {run}; pass the folder given to `cytoreg eval --output`")
    rows = [r for _, r in iter_samples(path)]
    rows = [r for r in rows if r.get("task") == task and r.get("model") == model and r.get("setting") == setting
            and r.get("try", 0) == 0 and r.get("error") is None and r.get("response")]
    if not rows:
        raise CytoregError(f"{path} has no answered {setting} samples of task '{task}' and model '{model}'")
    return rows


def export_review(run: Path, out: Path, task: str, model: str, per_class: int = 5, seed: int = 42,
                  setting: str = "free_text") -> dict[str, Any]:
    rows = _rows(Path(run), task, model, setting)
    rng = np.random.RandomState(seed)
    picked: list[dict] = []
    shortfalls = []
    for label in sorted({r["label"] for r in rows}):
        for correct in (True, False):
            pool = sorted((r for r in rows if r["label"] == label and bool(r["correct"]) == correct),
                          key=lambda r: r["id"])
            take = [pool[i] for i in rng.permutation(len(pool))[:per_class]]
            if len(take) < per_class:
                shortfalls.append({"label": label, "correct": correct, "available": len(take)})
            picked += take
    order = rng.permutation(len(picked))
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    key, sheet = [], []
    for item, j in enumerate(order, start=1):
        r = picked[j]
        src = Path(r["image"]) if r.get("image") else None
        if src is None or not src.exists():
            raise CytoregError(f"image of sample {r['id']} not found ({r.get('image')}); run the export where "
                               "the dataset is")
        name = f"cell_{item:03d}{src.suffix.lower()}"
        shutil.copy2(src, out / "images" / name)
        sheet.append({"item": item, "image": f"images/{name}", "explanation": str(r["response"]), "rating": "",
                      "expert_label": "", "mistakes": ""})
        key.append({"item": item, "sample_id": r["id"], "true_label": r["label"], "predicted": r["parsed"],
                    "correct": bool(r["correct"]), "confidence": r.get("confidence")})
    with (out / "review.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=SHEET_COLUMNS)
        w.writeheader()
        w.writerows({**s, "explanation": spreadsheet_text(s["explanation"])} for s in sheet)
    (out / "key.json").write_text(json.dumps({"run": str(run), "task": task, "model": model, "setting": setting,
                                              "per_class": per_class, "seed": seed, "shortfalls": shortfalls,
                                              "items": key}, indent=2))
    (out / "review.html").write_text(review_form(sheet), encoding="utf-8")
    return {"items": len(sheet), "shortfalls": shortfalls, "out": str(out)}


def review_form(sheet: list[dict]) -> str:
    """The blinded sheet as an offline HTML form: per cell a rating (1-5), the expert's own label and
    mistakes; answers are kept in the browser (localStorage) and downloaded as a ``review.csv`` with
    the columns of the CSV sheet, which ``cytoreg review import --ratings`` reads."""
    scale = "".join(f"<li>{k} – {html.escape(v)}</li>" for k, v in SCALE.items())
    cards = []
    for s in sheet:
        i = int(s["item"])
        radios = "".join(f'<label><input type="radio" name="rating-{i}" value="{k}"> {k} {html.escape(v)}</label> '
                         for k, v in SCALE.items())
        cards.append(
            f'<div class="item" data-item="{i}"><h3>Cell {i}</h3><img src="{html.escape(s["image"])}" alt="cell {i}">'
            f'<p class="ask">First classify the cell yourself, then read the explanation.</p>'
            f'<label>your cell type <input class="expert" name="expert-{i}" type="text"></label>'
            f'<details><summary>explanation</summary><pre>{html.escape(s["explanation"])}</pre></details>'
            f'<fieldset><legend>rating</legend>{radios}</fieldset>'
            f'<label>mistakes in the explanation <textarea class="mistakes" name="mistakes-{i}" rows="2"></textarea>'
            f'</label></div>')
    data = json.dumps([{k: s[k] for k in ("item", "image", "explanation")} for s in sheet],
                      ensure_ascii=False).replace("</", "<\\/")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Explanation review</title><style>'
            "body{font-family:system-ui,sans-serif;margin:24px;max-width:900px}.item{border-top:1px solid #ccc;"
            "padding:12px 0}img{max-width:360px;display:block}pre{white-space:pre-wrap}fieldset{margin:8px 0}"
            "textarea{width:100%}#bar{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #ccc}"
            "</style></head><body><h1>Explanation review</h1><p>For each cell: write your own cell type, then "
            f"open the explanation and rate how well it matches the cell's morphology:</p><ul>{scale}</ul>"
            '<div id="bar"><button id="download">Download review.csv</button> <span id="progress"></span> '
            "<small>(answers are kept in this browser until you download them; send the CSV back)</small></div>"
            f'{"".join(cards)}<script id="sheet" type="application/json">{data}</script><script>{REVIEW_JS}</script>'
            "</body></html>")


REVIEW_JS = r"""
(function(){
var sheet = JSON.parse(document.getElementById('sheet').textContent);
var KEY = 'cytoreg-review:' + location.pathname;
var saved = {}; try { saved = JSON.parse(localStorage.getItem(KEY) || '{}'); } catch (e) {}
function read(i){
  var r = document.querySelector('input[name="rating-' + i + '"]:checked');
  return {rating: r ? r.value : '', expert_label: document.querySelector('[name="expert-' + i + '"]').value,
          mistakes: document.querySelector('[name="mistakes-' + i + '"]').value};
}
function progress(){
  var done = sheet.filter(function(s){ return read(s.item).rating; }).length;
  document.getElementById('progress').textContent = done + ' of ' + sheet.length + ' rated';
}
sheet.forEach(function(s){
  var v = saved[s.item] || {};
  if (v.rating) { var r = document.querySelector('input[name="rating-' + s.item + '"][value="' + v.rating + '"]'); if (r) r.checked = true; }
  document.querySelector('[name="expert-' + s.item + '"]').value = v.expert_label || '';
  document.querySelector('[name="mistakes-' + s.item + '"]').value = v.mistakes || '';
});
document.addEventListener('input', function(){
  var all = {}; sheet.forEach(function(s){ all[s.item] = read(s.item); });
  try { localStorage.setItem(KEY, JSON.stringify(all)); } catch (e) {}
  progress();
});
// the same rule as spreadsheet_text(): a cell starting = + - @ (tab, CR) is shown as text, not run as a formula
function q(v){ v = String(v); if (/^[=+\-@\t\r]/.test(v)) v = "'" + v; return '"' + v.replace(/"/g, '""') + '"'; }
document.getElementById('download').addEventListener('click', function(){
  var lines = ['item,image,explanation,rating,expert_label,mistakes'];
  sheet.forEach(function(s){ var a = read(s.item);
    lines.push([s.item, q(s.image), q(s.explanation), a.rating, q(a.expert_label), q(a.mistakes)].join(',')); });
  var blob = new Blob([lines.join('\r\n') + '\r\n'], {type: 'text/csv'});
  var a = document.createElement('a'); a.href = URL.createObjectURL(blob); a.download = 'review.csv';
  document.body.appendChild(a); a.click(); a.remove();
});
progress();
})();
"""


def import_review(folder: Path, ratings: Path | None = None) -> dict[str, Any]:
    folder = Path(folder)
    key_path = folder / "key.json"
    if not key_path.exists():
        raise CytoregError(f"no key.json in {folder}; pass the folder written by `cytoreg review export`")
    key = read_json(key_path, "key.json")
    if not isinstance(key, dict) or not isinstance(key.get("items"), list) or not all(
            isinstance(k, dict) and "item" in k for k in key["items"]):
        raise CytoregError(f"{key_path}: not a review key written by `cytoreg review export` (items missing); "
                           "export the review again")
    ratings = Path(ratings) if ratings else folder / "review.csv"
    if not ratings.exists():
        raise CytoregError(f"no ratings sheet at {ratings}; pass the expert's filled CSV with --ratings")
    by_item = {k["item"]: k for k in key["items"]}
    rated: list[dict] = []
    problems: list[str] = []
    seen: set[int] = set()
    data = ratings.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = data.count(b"\n", 0, exc.start) + 1
        raise CytoregError(f"{ratings}:{bad_line}: not UTF-8 (byte offset {exc.start}); "
                           "save the sheet as 'CSV UTF-8' (Excel: File > Save As > CSV UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise CytoregError(f"{ratings}:{reader.line_num}: not a readable CSV sheet ({exc}); save it again as CSV "
                           "UTF-8") from None
    for line, row in enumerate(rows, start=2):
        try:
            item = int(row["item"])
        except (KeyError, ValueError, TypeError):
            problems.append(f"{ratings}:{line}: no item number")
            continue
        seen.add(item)
        value = (row.get("rating") or "").strip()
        if item not in by_item:
            problems.append(f"{ratings}:{line}: item {item} is not in key.json")
        elif value not in {"1", "2", "3", "4", "5"}:
            problems.append(f"{ratings}:{line}: item {item} rating {value!r} is not 1-5")
        else:
            rated.append({**by_item[item], "rating": int(value), "expert_label": _unguard((row.get("expert_label") or "").strip())})
    missing = sorted(set(by_item) - seen)
    if missing:
        problems.append(f"{ratings}: {len(missing)} item(s) missing from the sheet: {', '.join(map(str, missing[:10]))}")
    if problems:
        raise CytoregError("the review sheet has problems:\n" + "\n".join(problems))
    summary = review_summary(rated)
    summary.update({"task": key["task"], "model": key["model"], "run": key["run"]})
    (folder / "review_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def review_summary(rated: list[dict]) -> dict[str, Any]:
    """Seed A's numbers: mean ± SD (population SD, ddof 0, as its analysis) per correctness, share
    rated 4–5; correlation of model confidence (seed scale) with the rating where both exist."""
    def part(rs: list[dict]) -> dict[str, Any]:
        v = np.array([r["rating"] for r in rs], float)
        return {"n": int(len(v)), "mean": float(v.mean()) if len(v) else None,
                "sd": float(v.std(ddof=0)) if len(v) else None,
                "share_poor_or_misleading": float(np.mean(v >= 4)) if len(v) else None,
                "distribution": {str(k): int((v == k).sum()) for k in SCALE}}

    both = [r for r in rated if r.get("confidence") is not None]
    corr = pearson([r["confidence"] for r in both], [r["rating"] for r in both])
    agree = [r for r in rated if r.get("expert_label")]
    return {"correct": part([r for r in rated if r["correct"]]), "wrong": part([r for r in rated if not r["correct"]]),
            "all": part(rated), "corr_confidence_rating": corr,
            "expert_agrees_with_truth": (sum(r["expert_label"].lower() == str(r["true_label"]).lower() for r in agree)
                                         / len(agree)) if agree else None}
