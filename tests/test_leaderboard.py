"""Leaderboards from real `cytoreg eval` runs: Markdown/CSV numbers equal results.json, later runs
override earlier ones (noted), missing cells render and are named, baseline and paper rows, and the
HTML page rendered in headless Chromium shows the table and a confusion-matrix image."""
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cytoreg.cli import main
from cytoreg.errors import CytoregError
from cytoreg.report.leaderboard import build_table, load_runs, write_leaderboard


def _eval(out: Path, tasks: str, models: str, *extra: str) -> dict:
    assert main(["eval", "--tasks", tasks, "--models", models, "--output", str(out), "--no-progress",
                 "--bootstrap", "50", *extra]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    specs = root / "specs"
    specs.mkdir()
    (specs / "small.yaml").write_text("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 3}\n"
                                      "settings: [zero_shot]\nreference: {metric: f1_weighted, values: "
                                      "{'Some et al. 2024': 0.42}, random_f1_weighted: 0.09}\n")
    a = _eval(root / "a", "demo", "random,prior")
    b = _eval(root / "b", "small", "random", "--include", str(specs))
    c = _eval(root / "c", "demo", "random", "--seed", "7")  # overrides a's demo × random
    return root, a, b, c


def _md_rows(md: str) -> dict[str, list[str]]:
    rows = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| model"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_markdown_and_csv_equal_results_json(runs):
    root, a, b, c = runs
    out = root / "board"
    written = write_leaderboard([root / "a", root / "b", root / "c"], out, "f1_weighted", ("md", "csv"))
    md = written["md"].read_text()
    rows = _md_rows(md)
    ev = {(e["task"], e["model"]): e for r in (a, b, c) for e in r["evaluations"]}  # c last: c wins
    header = [h.strip() for h in md.splitlines()[2].strip("|").split("|")]
    assert header == ["model", "demo (zero-shot)", "small (zero-shot)", "mean rank"]
    # weightless guessers are baseline rows (name in italics), shown but never ranked
    for model in ("random", "prior"):
        for j, task in enumerate(("demo", "small")):
            e = ev.get((task, model))
            cell = rows[f"*{model}*"][j]
            if e is None:
                assert cell == "—"
                continue
            m, ci = e["metrics"]["f1_weighted"], e["ci"]["f1_weighted"]
            value, quals = cell.split(" (", 1)
            assert value.strip("*") == f"{m:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"
            assert quals.startswith(f"n={e['n']}")  # every cell says how many samples it covers
    # c's seed-7 random run overrides a's, and says so
    assert rows["*random*"][0].strip("*").startswith(f"{c['evaluations'][0]['metrics']['f1_weighted']:.3f}")
    assert "random on demo (zero-shot): c overrides a" in md  # runs named by folder, never by machine path
    # with no model rows, the best baseline per column is bold
    demo_vals = {m: ev[("demo", m)]["metrics"]["f1_weighted"] for m in ("random", "prior")}
    best = max(demo_vals, key=demo_vals.get)
    assert rows[f"*{best}*"][0].startswith("**") and not rows[f"*{min(demo_vals, key=demo_vals.get)}*"][0].startswith("**")
    # baselines get no mean rank
    assert rows["*prior*"][-1] == "" and rows["*random*"][-1] == ""
    # chance row from results.json, paper rows from the task's reference block
    assert rows["*chance (random\\_f1\\_weighted, expected)*"][:2] == [
        f"{c['tasks']['demo']['baselines']['random_f1_weighted']:.3f}",
        f"{b['tasks']['small']['baselines']['random_f1_weighted']:.3f}"]
    assert rows["*paper: Some et al. 2024*"][:2] == ["—", "0.420"]
    assert rows["*paper: random baseline*"][:2] == ["—", "0.090"]

    tidy = list(csv.DictReader(io.StringIO(written["csv"].read_text())))
    assert list(tidy[0]) == ["task", "setting", "model", "metric", "value", "ci_low", "ci_high", "n", "coverage",
                             "status", "run"]
    got = {(r["task"], r["model"], r["metric"]): r for r in tidy}
    for (task, model), e in ev.items():
        for metric, v in e["metrics"].items():
            if isinstance(v, (int, float)):
                row = got[(task, model, metric)]
                assert float(row["value"]) == float(v)
                if metric in e["ci"]:
                    assert float(row["ci_low"]) == e["ci"][metric]["low"]
    assert len(tidy) == sum(1 for e in ev.values() for v in e["metrics"].values() if isinstance(v, (int, float)))


def test_lower_is_better_metrics_rank_the_other_way(runs):
    root, a, *_ = runs
    table = build_table(load_runs([root / "a"]), "invalid_rate")
    assert all(r.cells[0].best for r in table.rows if r.kind == "baseline")  # baselines never answer invalid: a tie
    with pytest.raises(CytoregError, match="no evaluation has the metric 'f2'; scalar metrics in these runs: .*accuracy"):
        build_table(load_runs([root / "a"]), "f2")
    with pytest.raises(CytoregError, match="no results.json in .*nowhere"):
        load_runs([root / "nowhere"])


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


PROBE = """<script>
window.addEventListener('load', function(){
  var t = document.getElementById('leaderboard').getBoundingClientRect();
  var img = document.querySelector('img.confusion');
  var r = img.getBoundingClientRect();
  var p = document.createElement('pre'); p.id = 'probe';
  p.textContent = JSON.stringify({table: [t.left, t.top, t.width, t.height], rows: document.querySelectorAll('#leaderboard tbody tr').length,
    img: [r.left, r.top, r.width, r.height], natural: img.naturalWidth, thumbs: Array.from(document.querySelectorAll('.ex img')).filter(function(i){return i.naturalWidth > 0;}).length});
  document.body.appendChild(p);
});
</script>"""


def test_html_renders_in_headless_chromium(runs, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    from PIL import Image

    root, *_ = runs
    out = tmp_path / "html"
    page = write_leaderboard([root / "a", root / "b"], out, "f1_weighted", ("html",))["html"]
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # works offline: nothing fetched
    probe = out / "probe.html"
    probe.write_text(text.replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--force-device-scale-factor=1", "--window-size=1400,2000", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    info = json.loads(dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert info["rows"] == 5  # random, prior, chance, two paper rows
    assert info["table"][2] > 200 and info["table"][3] > 60
    assert info["natural"] > 100 and info["img"][2] > 100 and info["img"][3] > 100
    assert info["thumbs"] >= 2
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", probe.as_uri()], capture_output=True, timeout=120)
    im = Image.open(shot).convert("L")
    for left, top, width, height in (info["table"], info["img"]):
        box = im.crop((int(left), int(top), int(left + width), int(min(top + height, im.height))))
        dark = int((np.asarray(box) < 200).sum())
        assert dark > 0.01 * box.width * box.height, (left, top, width, height)  # drawn, not blank


def test_cli_leaderboard_prints_markdown(runs, capsys):
    root, *_ = runs
    assert main(["leaderboard", str(root / "a"), "--format", "md", "--out", str(root / "cli")]) == 0
    assert "| *random* |" in capsys.readouterr().out
    assert (root / "cli" / "leaderboard.md").exists() and not (root / "cli" / "index.html").exists()
    r = subprocess.run([sys.executable, "-m", "cytoreg.cli", "leaderboard", str(root / "a"), "--format", "pdf",
                        "--out", str(root / "x")], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown format(s) pdf; choose from md, csv, html" in r.stderr
