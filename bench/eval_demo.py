"""``cytoreg eval --tasks demo --models random,prior`` end to end (fresh interpreter per run,
median of several), and its statistics: the count-array path against the former per-resample
loop (tests/reference_stats.py) on the same predictions in this process, with the numbers
checked equal.

    python bench/eval_demo.py [--runs 5] [--baseline-src DIR]

``--baseline-src`` times the same command with another copy of cytoreg's ``src`` (e.g. the
commit before this work: ``git archive 97e665d src | tar -x -C /tmp/old``), alternating runs so
both see the same machine load.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import reference_stats as ref  # noqa: E402

from _cli import run_cli  # noqa: E402
from _report import emit, median, row  # noqa: E402
from cytoreg.metrics import statistics  # noqa: E402
from cytoreg.metrics.classification import Predictions  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--baseline-src", type=Path, help="another cytoreg src folder to time the same command with")
args = ap.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    argv = ["eval", "--tasks", "demo", "--models", "random,prior", "--output", str(tmp / "run"), "--no-progress"]
    runs, base = [], []
    for _ in range(args.runs + 1):
        runs.append(run_cli(argv, tmp / "cache", tmp))
        if args.baseline_src:
            base.append(run_cli(argv[:-2] + [str(tmp / "base"), "--no-progress"], tmp / "cache-base", tmp,
                                args.baseline_src))
    walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
    first, warm, warm_cpu = walls[0], median(walls[1:]), median(cpus[1:])
    print(f"cytoreg eval --tasks demo --models random,prior: first (catalog cache empty) {first:.2f} s, "
          f"then median {warm:.2f} s over {args.runs} runs {[round(w, 2) for w in walls[1:]]}; "
          f"CPU (user+sys) median {warm_cpu:.2f} s")

    extra = []
    if base:
        b_wall, b_cpu = median([r[0] for r in base[1:]]), median([r[1] for r in base[1:]])
        print(f"baseline {args.baseline_src}: median {b_wall:.2f} s wall, {b_cpu:.2f} s CPU")
        extra = [row("eval demo speed-up vs baseline src (wall)", b_wall / warm, 4, "x", True),
                 row("eval demo speed-up vs baseline src (CPU)", b_cpu / warm_cpu, 4, "x", True)]
        old_res = json.loads((tmp / "base" / "results.json").read_text())
        new_res = json.loads((tmp / "run" / "results.json").read_text())
        keys = ("metrics", "ci", "folds")

        def kept(old: dict, new: dict) -> bool:
            """Every number the baseline wrote is written again, unchanged (additions are allowed)."""
            return all(k in new and new[k] == v for k, v in old.items())

        same_as_base = all(kept(eo[k], en[k]) for eo, en in zip(old_res["evaluations"], new_res["evaluations"])
                           for k in keys) and all(kept(co, cn) for co, cn in zip(old_res["comparisons"],
                                                                                  new_res["comparisons"]))
        print(f"results.json: every metric, CI, fold spread and comparison the baseline wrote is identical: {same_as_base}"
              " (new entries, e.g. invalid_rate's CI or a comparison's n, are additions)")
        extra.append(row("eval demo results differing from baseline (0 = identical)", float(not same_as_base), 0, ""))
    results = json.loads((tmp / "run" / "results.json").read_text())
    rows = [json.loads(line) for line in (tmp / "run" / "samples.jsonl").read_text().splitlines()]
    labels = results["tasks"]["demo"]["labels"]
    preds = {}
    for model in ("random", "prior"):
        mine = [r for r in rows if r["model"] == model]
        preds[model] = Predictions([r["label"] for r in mine], [r["parsed"] for r in mine], labels)
    metrics = ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro"]
    resamples, paired = 1000, 2000

    def former():
        out = {m: {k: ref.bootstrap_ci(preds[m], k, resamples, 0.95, 0) for k in metrics} for m in preds}
        return out, ref.paired_bootstrap(preds["random"], preds["prior"], "f1_weighted", paired, 0)

    def current():
        statistics._MEMO.clear()
        out = {m: statistics.bootstrap_cis(preds[m], metrics, resamples, 0.95, 0) for m in preds}
        return out, statistics.paired_bootstrap(preds["random"], preds["prior"], "f1_weighted", paired, 0)

    t0 = time.perf_counter()
    old = former()
    t_old = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        new = current()
        times.append(time.perf_counter() - t0)
    same = old == new
    written = {e["model"]: e["ci"] for e in results["evaluations"]}
    same_written = all(written[m][k] == pytest_free for m in preds for k, pytest_free in old[0][m].items())
    print(f"statistics of this run (2 models x 4 CIs x {resamples} + paired {paired}): former loop {t_old:.2f} s, "
          f"count arrays {median(times):.3f} s; identical numbers: {same}; results.json CIs equal the former: "
          f"{same_written}")
    emit([row("eval demo random,prior (wall, warm catalog cache)", warm, 1.5,
              note=f"first run {first:.2f} s"),
          row("eval demo random,prior, CPU (user+sys)", warm_cpu, 1.5),
          row("eval demo statistics speed-up vs former loop", t_old / median(times), 4, "x", True,
              note=f"identical numbers: {same and same_written}")] + extra)
    if not (same and same_written):
        sys.exit(1)
