"""`cytoreg list` wall time (median of several runs, fresh process each) and its imports.

    python bench/list_timing.py [--runs 7]
"""
import argparse
import statistics
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=7)
args = parser.parse_args()

times = {}
for label, cmd in {"cytoreg list": [sys.executable, "-m", "cytoreg.cli", "list"],
                   "cytoreg validate (built-ins)": [sys.executable, "-m", "cytoreg.cli", "show", "demo"],
                   "python -c pass (baseline)": [sys.executable, "-c", "pass"]}.items():
    runs = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        runs.append(time.perf_counter() - t0)
    times[label] = statistics.median(runs)
    print(f"{label:32s} median {times[label]:.3f} s over {args.runs} runs")
print(f"ratio cytoreg list / bare interpreter start: {times['cytoreg list'] / times['python -c pass (baseline)']:.1f}x")
heavy = subprocess.run([sys.executable, "-c", "import sys; from cytoreg.cli import main; main(['list']);"
                        "print([m for m in ('torch','transformers','open_clip','datasets') if m in sys.modules])"],
                       capture_output=True, text=True).stdout.strip().splitlines()[-1]
print(f"heavy modules imported by `cytoreg list`: {heavy}")
