"""Bootstrap at seed A's scale: 20,000 resamples x 4 CI metrics of one model + a paired test of
two models, n = 1,000 samples, 20 classes; count arrays vs the former per-resample loop
(tests/reference_stats.py), same draws, in one process.

    python bench/bootstrap.py [--resamples 20000] [--n 1000] [--classes 20] [--reference-resamples 20000]
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import reference_stats as ref  # noqa: E402

from _report import emit, median, row  # noqa: E402
from cytoreg.metrics import statistics  # noqa: E402
from cytoreg.metrics.classification import Predictions  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--resamples", type=int, default=20000)
ap.add_argument("--n", type=int, default=1000)
ap.add_argument("--classes", type=int, default=20)
ap.add_argument("--reference-resamples", type=int, default=20000)
args = ap.parse_args()

rng = np.random.default_rng(0)
labels = [f"class{i}" for i in range(args.classes)]
y = list(rng.choice(labels, args.n))
a = Predictions(y, [t if rng.random() < 0.7 else rng.choice(labels + [None]) for t in y], labels)
b = Predictions(y, [t if rng.random() < 0.5 else rng.choice(labels) for t in y], labels)
METRICS = ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro"]


def current(r):
    statistics._MEMO.clear()
    cis = statistics.bootstrap_cis(a, METRICS, r, 0.95, 0)
    return cis, statistics.paired_bootstrap(a, b, "f1_weighted", r, 0)


def former(r):
    return ({m: ref.bootstrap_ci(a, m, r, 0.95, 0) for m in METRICS},
            ref.paired_bootstrap(a, b, "f1_weighted", r, 0))


times, cpu = [], []
for _ in range(5):
    t0, c0 = time.perf_counter(), time.process_time()
    new = current(args.resamples)
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
t0 = time.perf_counter()
old = former(args.reference_resamples)
t_old = (time.perf_counter() - t0) * args.resamples / args.reference_resamples
same = old == new if args.reference_resamples == args.resamples else current(args.reference_resamples) == old
print(f"n={args.n}, {args.classes} classes, {args.resamples} resamples x {len(METRICS)} CIs + paired test: "
      f"count arrays median {median(times):.3f} s {[round(t, 3) for t in times]} (CPU {median(cpu):.3f} s); former loop {t_old:.2f} s"
      f"{'' if args.reference_resamples == args.resamples else ' (extrapolated)'}; identical numbers: {same}")
emit([row(f"bootstrap {args.resamples} x 4 CIs + paired, n={args.n}, K={args.classes}", median(times), 0.5),
      row("bootstrap, CPU (process time)", median(cpu), 0.5),
      row("bootstrap speed-up vs former loop", t_old / median(times), 1, "x", True,
          note=f"identical numbers: {same}")])
if not same:
    sys.exit(1)
