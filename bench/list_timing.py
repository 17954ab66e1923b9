"""`cytoreg list` wall time in a fresh interpreter: cold (no catalog cache: every spec parsed,
resolved and validated, then cached) and warm (the second call: specs from the cache), medians
of several runs against a bare interpreter start; and the heavy libraries it imports.

    python bench/list_timing.py [--runs 7]
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _cli import run_cli
from _report import emit, median, row

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=7)
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    cold, warm, cold_cpu, warm_cpu, heavy = [], [], [], [], set()
    for i in range(args.runs):
        w, c, h = run_cli(["list"], tmp / f"cache{i}", tmp)  # a new cache folder: cold
        cold.append(w)
        cold_cpu.append(c)
        w, c, h2 = run_cli(["list"], tmp / f"cache{i}", tmp)  # the second call: warm
        warm.append(w)
        warm_cpu.append(c)
        heavy |= set(h) | set(h2)
    bare = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
print(f"cytoreg list: cold median {median(cold):.3f} s (CPU {median(cold_cpu):.3f} s), warm median "
      f"{median(warm):.3f} s (CPU {median(warm_cpu):.3f} s) over {args.runs} runs; "
      f"bare interpreter {median(bare):.3f} s; heavy modules imported: {sorted(heavy) or 'none'}")
emit([row("cytoreg list, warm (second call), wall", median(warm), 0.3, note=f"bare python {median(bare):.3f} s"),
      row("cytoreg list, warm, CPU (user+sys)", median(warm_cpu), 0.3),
      row("cytoreg list, cold (no catalog cache), wall", median(cold), 0.6),
      row("cytoreg list, cold, CPU (user+sys)", median(cold_cpu), 0.6)])
