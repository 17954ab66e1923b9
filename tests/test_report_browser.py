"""The leaderboard folder and the sample explorer, driven in real headless Chromium (Debian's
``chromium`` through Playwright): a moved folder still shows every image, the explorer's filters
and confusion-matrix cells list exactly the rows samples.jsonl holds, the review form round-trips
to ``review import``, no output file holds a path of this machine, and a task whose licence
forbids redistribution gets no image copies. Screenshots go to ``$CYTOREG_TEST_ARTIFACTS`` (default
``build/test-artifacts``) for a person to look at."""
import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import cytoreg
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.report.leaderboard import write_leaderboard
from fake_openai import FakeOpenAI, image_hashes
from test_explain import explain_run  # noqa: F401  (a module fixture: an explain run to review)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                                         "chromium; .ci/run installs it)")
PBC = Path(cytoreg.__file__).parent / "demo_data/pbc/PBC_dataset_normal_DIB"
PREFIX = {"BNE": "Band Neutrophil", "SNE": "Segmented Neutrophil", "MY": "Myelocyte", "MMY": "Metamyelocyte",
          "PMY": "Promyelocyte", "BA": "Basophil", "EO": "Eosinophil", "ERB": "Erythroblast", "LY": "Lymphocyte",
          "MO": "Monocyte", "PLATELET": "Platelet"}
LABEL_BY_SHA = {hashlib.sha256(p.read_bytes()).hexdigest(): PREFIX.get(p.name.split("_")[0]) for p in PBC.rglob("*.jpg")}
ARTIFACTS = Path(os.environ.get("CYTOREG_TEST_ARTIFACTS", Path(__file__).parents[1] / "build" / "test-artifacts"))


def _answer(body: dict) -> str:
    """Right for about half of the cells; Basophils often read as Lymphocytes; some replies unreadable."""
    sha = image_hashes(body)[-1]
    label = LABEL_BY_SHA[sha]
    k = int(sha, 16) % 4
    if k == 0:
        return "I cannot tell from this image."
    if k == 1 and label != "Lymphocyte":
        return "Lymphocyte"
    return f"**{label}**"


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    specs = root / "specs"
    specs.mkdir()
    (specs / "small.yaml").write_text("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 4}\n"
                                      "settings: [zero_shot]\n")
    (specs / "secret.yaml").write_text("spec: task/v1\nname: secret\nextends: demo\nsampling: {test_per_class: 1}\n"
                                       "settings: [zero_shot]\nredistributable: false\n")
    with FakeOpenAI(_answer) as srv:
        (specs / "gptlike.yaml").write_text(f"spec: model/v1\nname: gptlike\nadapter: openai\nparams: {{model: gpt-like, "
                                            f"base_url: '{srv.base_url}'}}\nexecution: {{concurrency: 4}}\n")
        evaluate(EvalConfig(["small", "secret"], ["gptlike", "random"], output=root / "run", include=[str(specs)],
                            progress=False, bootstrap=50))
    samples = [json.loads(x) for x in (root / "run" / "samples.jsonl").read_text().splitlines()]
    write_leaderboard([root / "run"], root / "board", ["f1_weighted", "accuracy"])
    return root, samples


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)


def _all_images_load(page) -> tuple[int, list[str]]:
    """(images checked, sources that failed): every <img> on the page and every image the explorer
    rows name, each loaded by the browser."""
    return tuple(page.evaluate("""async () => {
        const srcs = new Set(Array.from(document.images).map(i => i.getAttribute('src')));
        const data = document.getElementById('data');
        if (data && data.textContent !== 'null') JSON.parse(data.textContent).rows.forEach(r => r.image && srcs.add(r.image));
        const bad = [];
        await Promise.all(Array.from(srcs).map(src => new Promise(res => {
            const im = new Image(); im.onload = () => { if (!im.naturalWidth) bad.push(src); res(); };
            im.onerror = () => { bad.push(src); res(); }; im.src = src; })));
        return [srcs.size, bad];
    }"""))


def test_moved_leaderboard_shows_every_image(board_dir, browser, tmp_path):
    root, _ = board_dir
    moved = tmp_path / "elsewhere" / "published"
    shutil.copytree(root / "board", moved)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    for name in ("index.html", "samples.html"):
        page.goto((moved / name).as_uri())
        n, bad = _all_images_load(page)
        assert n > 10 and bad == [], (name, bad)
        _shot(page, f"moved-{name}.png")
    page.close()


def _rows_listed(page) -> list[tuple[str, str, str]]:
    """(model, id, predicted) of every listed row, across all pages."""
    out = []
    while True:
        out += page.evaluate("""() => Array.from(document.querySelectorAll('#rows tr')).map(tr =>
            [tr.cells[3].textContent, tr.cells[4].textContent, tr.cells[6].textContent])""")
        pages = page.text_content("#page")
        cur, total = [int(x) for x in pages.replace("page ", "").split(" of ")]
        if cur >= total:
            return [tuple(r) for r in out]
        page.click("#next")


def test_explorer_filters_to_exactly_the_rows_of_samples_jsonl(board_dir, browser):
    root, samples = board_dir
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto((root / "board" / "samples.html").as_uri())
    page.select_option("#f-outcome", "wrong")
    page.select_option("#f-label", "Basophil")
    page.select_option("#f-model", "gptlike")
    listed = sorted(_rows_listed(page))
    want = sorted(("gptlike", s["id"], s["parsed"]) for s in samples if s["model"] == "gptlike" and s["label"] == "Basophil"
                  and s["parsed"] is not None and not s["correct"] and not s["error"])
    assert listed == want and want, (listed, want)
    page.click("#rows tr:first-child")
    detail = page.text_content("#detail")
    first = next(s for s in samples if s["model"] == "gptlike" and s["id"] == listed[0][1] and s["task"] == "small"
                 ) if any(s["task"] == "small" and s["id"] == listed[0][1] for s in samples) else None
    assert "true: Basophil" in detail and "other answers for this image" in detail
    from cytoreg.registry.catalog import Catalog

    prompt = Catalog.load().task("demo").get("prompts")["zero_shot"]
    assert "[user] [image: this sample]" in detail and prompt.split("\n")[0].strip() in detail  # the exact prompt
    if first:
        assert first["response"] in detail  # the raw reply, verbatim
    _shot(page, "explorer-wrong-basophil-gptlike.png")
    # the same filter through the URL, as the leaderboard links it
    page.goto((root / "board" / "samples.html").as_uri() + "#model=gptlike&label=Basophil&outcome=wrong")
    assert sorted(_rows_listed(page)) == want
    page.close()


def test_confusion_cell_lists_its_samples(board_dir, browser):
    root, samples = board_dir
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto((root / "board" / "samples.html").as_uri() + "#task=small&model=gptlike&setting=zero_shot")
    first = [s for s in samples if s["task"] == "small" and s["model"] == "gptlike" and s["try"] == 0]
    pred = lambda s: s["parsed"] if s["parsed"] is not None else ("(error)" if s["error"] else "(invalid)")  # noqa: E731
    cells = page.evaluate("() => Array.from(document.querySelectorAll('#cm td.n')).map(td => "
                          "[td.dataset.t, td.dataset.p, +td.textContent])")
    assert sum(n for *_, n in cells) == len(first)
    for t, p, n in cells:
        assert n == sum(1 for s in first if s["label"] == t and pred(s) == p)
    t, p, n = next(c for c in cells if c[0] == "Basophil" and c[1] == "Lymphocyte")
    page.click(f'#cm td.n[data-t="{t}"][data-p="{p}"]')
    listed = sorted(_rows_listed(page))
    assert listed == sorted(("gptlike", s["id"], p) for s in first if s["label"] == t and pred(s) == p)
    assert len(listed) == n
    _shot(page, "explorer-confusion-cell.png")
    page.close()


def test_no_machine_path_in_any_output_file(board_dir):
    root, _ = board_dir
    forbidden = {str(root), str(root.resolve()), str(PBC.parent.parent), str(Path(cytoreg.__file__).parents[2])}
    checked = 0
    for path in (root / "board").rglob("*"):
        if path.suffix in (".html", ".md", ".csv", ".json", ".jsonl"):
            text = path.read_text(encoding="utf-8")
            checked += 1
            for f in forbidden:
                assert f not in text, (path.name, f)
    assert checked >= 5


def test_task_that_may_not_be_redistributed_gets_no_image_copies(board_dir, tmp_path):
    root, samples = board_dir
    data = (root / "board" / "samples.html").read_text()
    rows = json.loads(data.split('<script id="data" type="application/json">', 1)[1].split("</script>", 1)[0]
                      .replace("<\\/", "</"))["rows"]
    secret = [r for r in rows if r["task"] == "secret"]
    assert secret and all(r["image"] is None for r in secret)
    assert all(r["image"] for r in rows if r["task"] == "small")
    copied = {p.name for p in (root / "board" / "images").iterdir()}
    small_sources = {s["image"] for s in samples if s["task"] == "small"}
    assert len(copied) == len(small_sources)  # one copy per image of the redistributable task, none of secret's
    assert "licence" in (root / "board" / "index.html").read_text()
    # asked for explicitly, they are copied, with a warning in the page
    out = write_leaderboard([root / "run"], tmp_path / "private", "f1_weighted", ("html",), include_images=True)
    rows = json.loads(out["samples"].read_text().split('<script id="data" type="application/json">', 1)[1]
                      .split("</script>", 1)[0].replace("<\\/", "</"))["rows"]
    assert all(r["image"] for r in rows)
    assert "do not publish this folder" in out["html"].read_text()


@pytest.fixture
def review_export(explain_run, tmp_path):
    from cytoreg.cli import main

    root, *_ = explain_run
    out = tmp_path / "review"
    assert main(["review", "export", str(root / "run"), "--task", "small-explain", "--model", "vlm", "--per-class", "1",
                 "--seed", "3", "--out", str(out)]) == 0
    return out, json.loads((out / "key.json").read_text())


def test_review_form_round_trip(review_export, browser, tmp_path):
    from cytoreg.cli import main

    out, key = review_export
    page = browser.new_page(viewport={"width": 1000, "height": 900}, accept_downloads=True)
    page.goto((out / "review.html").as_uri())
    by_item = {k["item"]: k for k in key["items"]}
    for item, k in by_item.items():
        page.check(f'input[name="rating-{item}"][value="{1 if k["correct"] else 5}"]')
        page.fill(f'[name="expert-{item}"]', k["true_label"])
    page.fill(f'[name="mistakes-{min(by_item)}"]', 'says "round", it is, lobed')
    page.fill(f'[name="mistakes-{max(by_item)}"]', '=HYPERLINK("http://x")')  # typed text must not become a formula
    assert page.text_content("#progress") == f"{len(by_item)} of {len(by_item)} rated"
    _shot(page, "review-form.png")
    with page.expect_download() as dl:
        page.click("#download")
    sheet = tmp_path / "filled.csv"
    dl.value.save_as(sheet)
    page.close()
    with sheet.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["mistakes"] for r in rows if int(r["item"]) == min(by_item)] == ['says "round", it is, lobed']
    assert [r["mistakes"] for r in rows if int(r["item"]) == max(by_item)] == ["'=HYPERLINK(\"http://x\")"]
    assert all(not r["explanation"].startswith(("=", "+", "-", "@")) for r in rows)
    assert main(["review", "import", str(out), "--ratings", str(sheet)]) == 0
    summary = json.loads((out / "review_summary.json").read_text())
    assert summary["correct"]["mean"] in (1.0, None) and summary["wrong"]["mean"] in (5.0, None)
    assert summary["all"]["n"] == len(by_item)
    assert summary["expert_agrees_with_truth"] == 1.0


def test_view_command_writes_and_serves_the_explorer(board_dir, tmp_path):
    import subprocess
    import sys
    import time
    import urllib.request

    from cytoreg.cli import main

    root, samples = board_dir
    assert main(["view", str(root / "run"), "-o", str(tmp_path / "v")]) == 0
    page = (tmp_path / "v" / "samples.html").read_text()
    assert page.count('"outcome":') == len(samples)  # every row of samples.jsonl, once
    assert main(["view", str(tmp_path / "nothing-here")]) == 2
    proc = subprocess.Popen([sys.executable, "-m", "cytoreg", "view", str(tmp_path / "v"), "--serve"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        for _ in range(50):
            try:
                body = urllib.request.urlopen(url, timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert body == page
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_efficiency_reports_tokens_and_latency_percentiles(board_dir):
    root, samples = board_dir
    md = (root / "board" / "leaderboard.md").read_text()
    section = md.split("## efficiency", 1)[1].split("## provenance", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| gptlike |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    lat = sorted(s["latency_s"] for s in samples if s["model"] == "gptlike" and s.get("latency_s") is not None)
    assert len(lat) == sum(1 for s in samples if s["model"] == "gptlike" and not s["error"])
    import numpy as np

    assert cells[6] == f"{np.percentile(lat, 50):.2f}" and cells[7] == f"{np.percentile(lat, 95):.2f}"
