"""Every figure of the performance bounds in one table: runs each bench script in its own
process and collects the line ``BENCH [...]`` each prints. Timings on a shared machine vary:
each script reports medians of several runs.

    python bench/all.py [--skip clip_rerun,api_concurrency] [--quick] [--baseline-src DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = ["eval_demo", "bootstrap", "clip_rerun", "api_concurrency", "list_timing"]

ap = argparse.ArgumentParser()
ap.add_argument("--skip", default="", help="comma-separated script names to leave out")
ap.add_argument("--baseline-src", help="passed to eval_demo.py: an older cytoreg src to compare with")
ap.add_argument("--quick", action="store_true", help="CLIP with the tiny test model instead of ViT-B-32 (whose "
                "first run takes minutes on a small CPU)")
args = ap.parse_args()

rows, failed = [], []
for name in SCRIPTS:
    if name in args.skip.split(","):
        continue
    t0 = time.perf_counter()
    extra = ["--arch", "tiny"] if args.quick and name == "clip_rerun" else []
    if args.baseline_src and name == "eval_demo":
        extra = ["--baseline-src", args.baseline_src]
    out = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             [str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])})
    lines = out.stdout.splitlines()
    got = [json.loads(line[6:]) for line in lines if line.startswith("BENCH ")]
    for line in lines:
        if not line.startswith("BENCH ") and not line.startswith("  "):
            print(f"[{name}] {line}")
    if out.returncode != 0 or not got:
        failed.append(name)
        print(f"[{name}] failed ({out.returncode}):\n{out.stderr[-2000:]}")
    for r in (got[0] if got else []):
        rows.append({**r, "script": name})
    print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", flush=True)

print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
w = max(len(r["name"]) for r in rows) if rows else 10
print(f"{'figure':{w}}  {'value':>9}  {'bound':>10}  {'ratio':>6}  met  script")
for r in rows:
    op = ">=" if r["higher_is_better"] else "<="
    print(f"{r['name']:{w}}  {r['value']:9.3f}  {op} {r['bound']:<7g}  {r['ratio']:6.2f}  {'yes' if r['ok'] else 'NO ':3}"
          f"  {r['script']}{'  (' + r['note'] + ')' if r['note'] else ''}")
sys.exit(1 if failed else 0)
