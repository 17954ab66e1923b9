"""Sample explorer: how long a 10,000-sample run takes to open in headless Chromium, against the
issue's bound of 2 s, and what writing the page costs.

    python bench/explorer.py [--samples 10000]

A real `cytoreg eval` run of the weightless baselines on `demo` is replicated (same rows, new ids)
to the requested size; the page is opened from file:// and timed from navigation start to the
first page of rows and the confusion matrix drawn (Performance API, in the page)."""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=10_000)
args = parser.parse_args()

from cytoreg.cli import main  # noqa: E402
from cytoreg.report.explorer import load_board, write_explorer  # noqa: E402

chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if chromium is None:
    sys.exit("needs Debian's chromium (apt-get install chromium)")
from playwright.sync_api import sync_playwright  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    main(["eval", "--tasks", "demo", "--models", "random", "--output", str(root / "run"), "--no-progress",
          "--bootstrap", "10"])
    rows = [json.loads(x) for x in (root / "run" / "samples.jsonl").read_text().splitlines()]
    res = json.loads((root / "run" / "results.json").read_text())
    big = []
    k = 0
    while len(big) < args.samples:
        for r in rows:
            if len(big) == args.samples:
                break
            big.append(dict(r, id=f"{r['id']}#{k}", response=f"{r['response']} (copy {k}) " + "x" * 200))
        k += 1
    (root / "run" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in big))
    res["tasks"]["demo"]["sample_ids"]["test"] = [r["id"] for r in big]
    res["evaluations"][0]["n"] = len(big)
    (root / "run" / "results.json").write_text(json.dumps(res))
    t0 = time.perf_counter()
    page = write_explorer(load_board([root / "run"]), root / "view")
    write_s = time.perf_counter() - t0
    size = page.stat().st_size
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        times = []
        for _ in range(3):
            pg = b.new_page()
            pg.goto(page.as_uri())
            pg.wait_for_selector("#rows tr")
            times.append(pg.evaluate("performance.now()") / 1000)
            n = pg.evaluate("document.querySelectorAll('#rows tr').length")
            pg.close()
        b.close()
    open_s = sorted(times)[1]
    print(f"samples: {len(big)}, page {size / 1e6:.1f} MB, written in {write_s:.2f} s (images copied once: "
          f"{len(list((root / 'view' / 'images').iterdir()))})")
    print(f"open in Chromium to first {n} rows + confusion matrix: median {open_s:.2f} s of 3 "
          f"(bound 2 s: {open_s / 2:.2f} of the bound)")
