"""The sample explorer: one static ``samples.html`` to browse every answer of a set of runs, offline.

Per sample: the image, the exact prompt (when the run recorded it), the raw reply, how it was read
(extraction step and detail), the judge's reply, explain-task extras, and every other model's
answer for the same image. Filters by task, setting, model, true and predicted class, outcome
(correct / wrong / invalid / error) and extraction step; a confusion matrix of the filtered rows
whose cells filter further; keyboard navigation (j/k, n/p). The rows are embedded as JSON so the
page opens from ``file://``; past ``EMBED_MAX`` rows they go to ``samples.json`` beside it and the
page needs ``cytoreg view --serve``.

Images are copied (downscaled) only for tasks that may be redistributed (``redistributable`` is
not false in the task spec) unless ``include_images`` is set: the folder can then be published.
"""
from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Iterable

from cytoreg.report.board import Board, Entry
from cytoreg.report.results import atomic_write

EMBED_MAX = 50_000
IMAGE_SIZE = 384
EXTRA_FIELDS = ("confidence", "features", "feature_scores", "judge_parsed", "explanation")


def outcome(row: dict) -> str:
    if row.get("error"):
        return "error"
    if row.get("parsed") is None:
        return "invalid"
    return "correct" if row.get("correct") else "wrong"


def _reply_text(resp) -> str:
    if isinstance(resp, dict):  # CLIP-style scores: the top five
        top = sorted(resp.items(), key=lambda kv: -float(kv[1]) if isinstance(kv[1], (int, float)) else 0)[:5]
        return "; ".join(f"{k}: {v:.3f}" if isinstance(v, (int, float)) else f"{k}: {v}" for k, v in top)
    return "" if resp is None else str(resp)


def may_copy_images(board: Board, task: str, include_images: bool) -> bool:
    if include_images:
        return True
    info = board.tasks.get(task) or board.tasks.get(task.split(".", 1)[0]) or {}
    return info.get("redistributable") is not False


class ImageCopier:
    """Downscaled JPEG copies under ``out/images/``, one per source file, named by a hash of the
    source path (no machine path ends up in the output)."""

    def __init__(self, out: Path, size: int = IMAGE_SIZE):
        self.dir = out / "images"
        self.size = size
        self.done: dict[str, str | None] = {}

    def __call__(self, src: str | None) -> str | None:
        if not src:
            return None
        if src in self.done:
            return self.done[src]
        name = hashlib.sha256(src.encode()).hexdigest()[:16] + ".jpg"
        dest = self.dir / name
        rel: str | None = f"images/{name}"
        if not dest.exists():
            try:
                from cytoreg.tasks.samples import open_image

                img = open_image(Path(src).read_bytes(), src).convert("RGB")
                img.thumbnail((self.size, self.size))
                self.dir.mkdir(parents=True, exist_ok=True)
                img.save(dest, "JPEG", quality=88)
            except Exception:  # a moved or unreadable image: the row shows "(image not available)"
                rel = None
        self.done[src] = rel
        return rel


def _run_rows(run: Path) -> Iterable[tuple[int, dict]]:
    path = run / "samples.jsonl"
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError:
                continue  # a truncated last line of an interrupted run: the rest is still shown


def collect(board: Board, out: Path, include_images: bool = False) -> tuple[list[dict], list[str]]:
    """Rows of every evaluation the board shows (overridden ones are left out), ready to embed;
    and notes (tasks whose images were not copied)."""
    copier = ImageCopier(out)
    shown: dict[tuple[Path, str, str, str], Entry] = {(e.run, e.task, e.setting, e.model): e
                                                     for e in board.entries.values()}
    rows: list[dict] = []
    withheld: set[str] = set()
    for run in dict.fromkeys(e.run for e in board.entries.values()):
        label = board.label(run)
        for line, r in _run_rows(run):
            key = (run, r.get("task"), r.get("setting"), r.get("model"))
            if key not in shown:
                continue
            task = str(r.get("task"))
            img = None
            if may_copy_images(board, task, include_images):
                img = copier(r.get("image"))
            elif r.get("image"):
                withheld.add(task)
            row = {"run": label, "line": line, "task": task, "setting": r.get("setting"), "model": r.get("model"),
                   "id": str(r.get("id")), "try": r.get("try", 0), "label": r.get("label"), "parsed": r.get("parsed"),
                   "outcome": outcome(r), "match": r.get("match"), "detail": r.get("match_detail") or "",
                   "reply": _reply_text(r.get("response")), "judge": r.get("judge_response") or "",
                   "error": r.get("error") or "", "prompt": r.get("prompt") or "", "image": img}
            extras = {k: r[k] for k in EXTRA_FIELDS if r.get(k) not in (None, "", {}, [])}
            if extras:
                row["extras"] = extras
            rows.append(row)
    notes = [f"images of '{t}' are not copied: its licence does not allow redistribution (task spec "
             "`redistributable: false`); pass --include-images for a private copy" for t in sorted(withheld)]
    return rows, notes


def write_explorer(board: Board, out: Path, include_images: bool = False, title: str = "cytoreg samples",
                   external: bool | None = None) -> Path:
    """Write ``out/samples.html`` (and ``out/samples.json`` when the rows are too many to embed)."""
    out.mkdir(parents=True, exist_ok=True)
    rows, notes = collect(board, out, include_images)
    external = len(rows) > EMBED_MAX if external is None else external
    data = json.dumps({"rows": rows, "notes": notes}, ensure_ascii=False, separators=(",", ":"))
    if external:
        atomic_write(out / "samples.json", data)
        embedded = "null"
    else:
        embedded = data.replace("</", "<\\/")
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{BODY}"
            f'<script id="data" type="application/json">{embedded}</script><script>{JS}</script></body></html>')
    path = out / "samples.html"
    atomic_write(path, page)
    return path


def collect_latencies(board: Board) -> dict[str, list[float]]:
    """model -> per-request seconds (``latency_s`` of first tries that were sent, not cached)."""
    out: dict[str, list[float]] = {}
    shown = {(e.run, e.task, e.setting, e.model) for e in board.entries.values()}
    for run in dict.fromkeys(e.run for e in board.entries.values()):
        for _, r in _run_rows(run):
            lat = r.get("latency_s")
            if isinstance(lat, (int, float)) and (run, r.get("task"), r.get("setting"), r.get("model")) in shown:
                out.setdefault(str(r.get("model")), []).append(float(lat))
    return out


def load_board(paths: list[Path]) -> Board:
    """Run folders (results.json + samples.jsonl) as a board, later ones overriding earlier ones."""
    from cytoreg.report.board import load_runs

    return load_runs(paths)


CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
#filters{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-end;margin-bottom:8px}
#filters label{display:flex;flex-direction:column;font-size:.8em;color:#555}
#filters select,#filters input{min-width:120px}
#main{display:flex;gap:16px;align-items:flex-start}
#list{flex:1 1 55%;min-width:0}
#detail{flex:1 1 45%;min-width:0;position:sticky;top:8px;max-height:95vh;overflow:auto;border:1px solid #ddd;padding:8px}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
#rows tr{cursor:pointer}
#rows tr.sel{outline:2px solid #1a73e8}
.correct{color:#137333}.wrong{color:#b3261e}.invalid{color:#8a4b00}.error{color:#777}
#cm td.n{cursor:pointer;text-align:right}#cm td.n:hover{background:#e8f0fe}#cm td.diag{background:#e6f4ea}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:6px;max-height:300px;overflow:auto}
#detail img{max-width:100%;max-height:320px;border:1px solid #ccc}
.notes li{color:#8a4b00}
.muted{color:#777;font-size:.85em}
"""

BODY = """
<p class="muted">Filter, then click a row (or use j/k; n/p for pages). Click a confusion-matrix cell to list
its samples. Rows come from the runs' samples.jsonl.</p>
<ul class="notes" id="notes"></ul>
<div id="filters">
 <label>task<select id="f-task"></select></label>
 <label>setting<select id="f-setting"></select></label>
 <label>model<select id="f-model"></select></label>
 <label>true class<select id="f-label"></select></label>
 <label>predicted<select id="f-parsed"></select></label>
 <label>outcome<select id="f-outcome"></select></label>
 <label>extraction step<select id="f-match"></select></label>
 <label>sample id contains<input id="f-id" type="search"></label>
 <button id="reset">reset</button>
</div>
<div id="summary" class="muted"></div>
<details id="cm-box" open><summary>confusion matrix of the filtered rows (first tries) <span id="cm-note" class="muted"></span></summary><div id="cm"></div></details>
<div id="main"><div id="list"><table><thead><tr><th>#</th><th>task</th><th>setting</th><th>model</th><th>id</th>
<th>true</th><th>predicted</th><th>outcome</th><th>step</th></tr></thead><tbody id="rows"></tbody></table>
<p><button id="prev">&larr; prev</button> <span id="page"></span> <button id="next">next &rarr;</button></p></div>
<div id="detail"><p class="muted">select a sample</p></div></div>
"""

JS = r"""
(function(){
var PAGE = 50, FIELDS = ['task','setting','model','label','parsed','outcome','match'];
var state = {page: 0, sel: 0, rows: [], filtered: []};
function esc(s){ return String(s == null ? '' : s).replace(/[&<>"']/g, function(c){
  return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]; }); }
function pred(r){ return r.parsed == null ? (r.outcome === 'error' ? '(error)' : '(invalid)') : r.parsed; }
function val(f, r){ return f === 'parsed' ? pred(r) : String(r[f] == null ? '' : r[f]); }
function start(data){
  state.rows = data.rows;
  document.getElementById('notes').innerHTML = data.notes.map(function(n){ return '<li>' + esc(n) + '</li>'; }).join('');
  FIELDS.forEach(function(f){
    var sel = document.getElementById('f-' + f), seen = {};
    state.rows.forEach(function(r){ seen[val(f, r)] = true; });
    sel.innerHTML = '<option value="">(all)</option>' + Object.keys(seen).sort().map(function(v){
      return '<option value="' + esc(v) + '">' + esc(v) + '</option>'; }).join('');
    sel.addEventListener('change', function(){ state.page = 0; state.sel = 0; apply(true); });
  });
  document.getElementById('f-id').addEventListener('input', function(){ state.page = 0; apply(true); });
  document.getElementById('reset').addEventListener('click', function(){
    FIELDS.forEach(function(f){ document.getElementById('f-' + f).value = ''; });
    document.getElementById('f-id').value = ''; state.page = 0; apply(true); });
  document.getElementById('prev').addEventListener('click', function(){ go(-1); });
  document.getElementById('next').addEventListener('click', function(){ go(1); });
  document.addEventListener('keydown', function(ev){
    if (ev.target.tagName === 'INPUT' || ev.target.tagName === 'SELECT') return;
    if (ev.key === 'j' || ev.key === 'ArrowDown') { move(1); ev.preventDefault(); }
    else if (ev.key === 'k' || ev.key === 'ArrowUp') { move(-1); ev.preventDefault(); }
    else if (ev.key === 'n') go(1); else if (ev.key === 'p') go(-1);
  });
  fromHash(); apply(false);
}
function fromHash(){
  var h = decodeURIComponent(location.hash.slice(1));
  h.split('&').forEach(function(kv){
    var i = kv.indexOf('='); if (i < 0) return;
    var k = kv.slice(0, i), v = kv.slice(i + 1), el = document.getElementById('f-' + k);
    if (el) { if (el.tagName === 'SELECT' && !Array.from(el.options).some(function(o){ return o.value === v; })) {
      var o = document.createElement('option'); o.value = v; o.textContent = v; el.appendChild(o); } el.value = v; }
  });
}
function filters(){
  var f = {}; FIELDS.forEach(function(k){ var v = document.getElementById('f-' + k).value; if (v !== '') f[k] = v; });
  return f;
}
function apply(push){
  var f = filters(), q = document.getElementById('f-id').value.toLowerCase();
  state.filtered = state.rows.filter(function(r){
    for (var k in f) if (val(k, r) !== f[k]) return false;
    return !q || r.id.toLowerCase().indexOf(q) >= 0;
  });
  if (push) history.replaceState(null, '', '#' + Object.keys(f).map(function(k){
    return k + '=' + encodeURIComponent(f[k]); }).join('&'));
  var counts = {}; state.filtered.forEach(function(r){ counts[r.outcome] = (counts[r.outcome] || 0) + 1; });
  document.getElementById('summary').textContent = state.filtered.length + ' of ' + state.rows.length + ' rows · ' +
    Object.keys(counts).sort().map(function(k){ return k + ' ' + counts[k]; }).join(', ');
  confusion(); render();
}
function confusion(){
  var f = filters(), base = state.rows.filter(function(r){
    if (r['try']) return false;
    for (var k in f) if (k !== 'label' && k !== 'parsed' && k !== 'outcome' && val(k, r) !== f[k]) return false;
    return true; });
  var t = {}, p = {}, m = {};
  base.forEach(function(r){ var a = val('label', r), b = val('parsed', r); t[a] = 1; p[b] = 1;
    m[a + '\u0000' + b] = (m[a + '\u0000' + b] || 0) + 1; });
  var ts = Object.keys(t).sort(), ps = Object.keys(p).sort(), combos = {};
  base.forEach(function(r){ combos[r.task + '|' + r.model + '|' + r.setting] = 1; });
  var k = Object.keys(combos).length;
  document.getElementById('cm-note').textContent = k > 1 ? '(pooled over ' + k +
    ' task × model × setting combinations: pick one of each above for a single matrix)' : '';
  if (!ts.length || ts.length > 60 || ps.length > 62) {
    document.getElementById('cm').innerHTML = '<p class="muted">' + (ts.length ? 'too many classes to draw; filter by task' : 'no rows') + '</p>';
    return; }
  var h = '<table><tr><th>true \\ predicted</th>' + ps.map(function(x){ return '<th>' + esc(x) + '</th>'; }).join('') + '</tr>';
  ts.forEach(function(a){ h += '<tr><th>' + esc(a) + '</th>' + ps.map(function(b){
    var n = m[a + '\u0000' + b] || 0;
    return n ? '<td class="n' + (a === b ? ' diag' : '') + '" data-t="' + esc(a) + '" data-p="' + esc(b) + '">' + n + '</td>' : '<td></td>';
  }).join('') + '</tr>'; });
  document.getElementById('cm').innerHTML = h + '</table>';
  document.querySelectorAll('#cm td.n').forEach(function(td){ td.addEventListener('click', function(){
    document.getElementById('f-label').value = td.dataset.t; setSelect('f-parsed', td.dataset.p);
    document.getElementById('f-outcome').value = ''; state.page = 0; state.sel = 0; apply(true); }); });
}
function setSelect(id, v){ var el = document.getElementById(id); el.value = v; }
function render(){
  var n = state.filtered.length, pages = Math.max(1, Math.ceil(n / PAGE));
  state.page = Math.min(state.page, pages - 1);
  var part = state.filtered.slice(state.page * PAGE, state.page * PAGE + PAGE);
  document.getElementById('rows').innerHTML = part.map(function(r, i){
    return '<tr data-i="' + i + '"><td>' + (state.page * PAGE + i + 1) + '</td><td>' + esc(r.task) + '</td><td>' + esc(r.setting) +
      '</td><td>' + esc(r.model) + '</td><td>' + esc(r.id) + '</td><td>' + esc(r.label) + '</td><td>' + esc(pred(r)) +
      '</td><td class="' + r.outcome + '">' + r.outcome + '</td><td>' + esc(r.match) + '</td></tr>'; }).join('');
  document.querySelectorAll('#rows tr').forEach(function(tr){ tr.addEventListener('click', function(){
    state.sel = +tr.dataset.i; show(); }); });
  document.getElementById('page').textContent = 'page ' + (state.page + 1) + ' of ' + pages;
  state.sel = Math.min(state.sel, Math.max(0, part.length - 1)); show();
}
function go(d){ var pages = Math.max(1, Math.ceil(state.filtered.length / PAGE));
  state.page = Math.max(0, Math.min(pages - 1, state.page + d)); state.sel = 0; render(); }
function move(d){ var part = document.querySelectorAll('#rows tr'); if (!part.length) return;
  var s = state.sel + d; if (s < 0) { if (state.page > 0) { go(-1); state.sel = PAGE - 1; render(); } return; }
  if (s >= part.length) { go(1); return; } state.sel = s; show(); }
function show(){
  document.querySelectorAll('#rows tr').forEach(function(tr){ tr.classList.toggle('sel', +tr.dataset.i === state.sel); });
  var r = state.filtered[state.page * PAGE + state.sel], d = document.getElementById('detail');
  if (!r) { d.innerHTML = '<p class="muted">no rows</p>'; return; }
  var others = state.rows.filter(function(o){ return o !== r && o.task === r.task && o.id === r.id; });
  var h = '<h3>' + esc(r.id) + '</h3>' + (r.image ? '<img alt="' + esc(r.id) + '" src="' + esc(r.image) + '">' :
    '<p class="muted">(image not available)</p>') +
    '<p>true: <b>' + esc(r.label) + '</b> · predicted: <b class="' + r.outcome + '">' + esc(pred(r)) + '</b> (' + r.outcome +
    ') · model ' + esc(r.model) + ' · ' + esc(r.setting) + (r['try'] ? ' · try ' + r['try'] : '') + '</p>' +
    '<p>read by: <b>' + esc(r.match) + '</b>' + (r.detail ? ' — ' + esc(r.detail) : '') + '</p>' +
    (r.prompt ? '<h4>prompt</h4><pre>' + esc(typeof r.prompt === 'string' ? r.prompt : JSON.stringify(r.prompt, null, 1)) + '</pre>' : '') +
    '<h4>reply</h4><pre>' + esc(r.reply) + '</pre>' + (r.error ? '<h4>error</h4><pre>' + esc(r.error) + '</pre>' : '') +
    (r.judge ? '<h4>judge</h4><pre>' + esc(r.judge) + '</pre>' : '') +
    (r.extras ? '<h4>extras</h4><pre>' + esc(JSON.stringify(r.extras, null, 1)) + '</pre>' : '') +
    '<h4>other answers for this image (' + others.length + ')</h4><table id="others"><tr><th>model</th><th>setting</th><th>predicted</th><th>outcome</th></tr>' +
    others.map(function(o){ return '<tr><td>' + esc(o.model) + '</td><td>' + esc(o.setting) + (o['try'] ? ' (try ' + o['try'] + ')' : '') +
      '</td><td>' + esc(pred(o)) + '</td><td class="' + o.outcome + '">' + o.outcome + '</td></tr>'; }).join('') + '</table>' +
    '<p class="muted">run ' + esc(r.run) + ', samples.jsonl line ' + r.line + '</p>';
  d.innerHTML = h;
}
var raw = document.getElementById('data').textContent;
var data = JSON.parse(raw);
if (data) start(data); else fetch('samples.json').then(function(r){ return r.json(); }).then(start).catch(function(){
  document.getElementById('summary').textContent = 'the rows are in samples.json: open this page through `cytoreg view --serve`'; });
})();
"""
