"""Scale-out: wall time of one process vs ``torchrun --nproc-per-node 2`` (same command, same
machine), and peak Python memory (tracemalloc) of sampling a synthetic BMC-sized manifest (171,373 rows) with
the two-pass draw vs holding every row, at 17k and 171k rows.

    python bench/scale.py [--arch vit_small_patch14_dinov2|tiny] [--skip-throughput]
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tests"))

ap = argparse.ArgumentParser()
ap.add_argument("--arch", default="vit_small_patch14_dinov2")
ap.add_argument("--skip-throughput", action="store_true")
args = ap.parse_args()

MEASURE = r"""
import sys, json, tracemalloc
from cytoreg.registry.catalog import Catalog
from cytoreg.registry.builtins import TASK_KINDS
from cytoreg.tasks.kinds import source_stream
cat = Catalog.load([sys.argv[1]])
spec = cat.task("synthetic")
tracemalloc.start()
if sys.argv[2] == "two-pass":
    prep = TASK_KINDS.get("classification")(spec).prepare()
    n = len(prep.test)
else:  # every row held, as a one-pass draw must
    stream, _ = source_stream(spec)
    rows = list(stream())
    n = len(rows)
print(json.dumps({"peak_mb": tracemalloc.get_traced_memory()[1] / 2**20, "n": n}))
"""


def manifest(d: Path, rows: int) -> Path:
    spec_dir = d / f"specs{rows}"
    spec_dir.mkdir()
    labels = [f"class_{k:02d}" for k in range(21)]
    with (d / f"m{rows}.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "patient", "slide", "notes"])
        for i in range(rows):
            lab = labels[i % 21]
            w.writerow([f"{lab}/{lab}_{i:06d}.jpg", lab, f"P{i // 40:05d}", f"S{i // 7:06d}",
                        "scanned at 40x, May-Grunwald-Giemsa, reviewed twice"])
    (spec_dir / "t.yaml").write_text(
        f"spec: task/v1\nname: synthetic\nkind: classification\ndata: {{source: manifest, root: '{d}', "
        f"manifest: m{rows}.csv}}\nlabels: [{', '.join(labels)}]\nsampling: {{test_per_class: 50}}\n"
        "prompts: {zero_shot: x}\n")
    return spec_dir


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    if not args.skip_throughput:
        from tiny_features import save_tiny_dinobloom, spec_text

        specs = tmp / "specs"
        specs.mkdir()
        if args.arch == "tiny":
            save_tiny_dinobloom(tmp / "m.pth")
            (specs / "m.yaml").write_text(spec_text("bench", tmp / "m.pth"))
        else:
            import timm
            import torch

            m = timm.create_model(args.arch, pretrained=False, img_size=224, num_classes=0)
            torch.save({"teacher": {f"backbone.{k}": v for k, v in m.state_dict().items()}}, tmp / "m.pth")
            (specs / "m.yaml").write_text(f"spec: model/v1\nname: bench\nadapter: timm\nparams: {{arch: {args.arch}, "
                                          f"checkpoint: '{tmp / 'm.pth'}', img_size: 224}}\nexecution: {{batch_size: 16}}\n")
        (specs / "t.yaml").write_text("spec: task/v1\nname: bench-probe\nkind: probe\nextends: demo\n"
                                      "sampling: {seed: 42, test_per_class: 10, train_per_class: 8}\n")
        cmd = ["-m", "cytoreg.cli", "eval", "--tasks", "bench-probe", "--models", "bench", "--include", str(specs),
               "--no-progress", "--bootstrap", "50"]
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *cmd, "--output", str(tmp / "one")], env=env, check=True, capture_output=True)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *cmd,
                        "--output", str(tmp / "two")], env=dict(env, OMP_NUM_THREADS="1"), check=True,
                       capture_output=True)
        two = time.perf_counter() - t0
        a = json.loads((tmp / "one/results.json").read_text())["evaluations"][0]["metrics"]["f1_weighted"]
        b = json.loads((tmp / "two/results.json").read_text())["evaluations"][0]["metrics"]["f1_weighted"]
        n = json.loads((tmp / "one/results.json").read_text())["tasks"]["bench-probe"]["n_test"]
        print(f"{args.arch}: feature extraction + probe on {n} test images (+ train), {os.cpu_count()} cores")
        print(f"1 process {one:.1f} s; torchrun 2 processes {two:.1f} s; speed-up {one / two:.2f}x "
              f"(f1_weighted {a:.4f} vs {b:.4f})")
    for rows in (17_137, 171_373):
        d = tmp / f"m{rows}"
        d.mkdir()
        spec_dir = manifest(d, rows)
        out = {}
        for mode in ("two-pass", "all-rows"):
            r = subprocess.run([sys.executable, "-c", MEASURE, str(spec_dir), mode], capture_output=True, text=True,
                               check=True)
            out[mode] = json.loads(r.stdout)
        tp, ar = out["two-pass"], out["all-rows"]
        print(f"{rows:>7} rows: peak Python memory while sampling: two-pass {tp['peak_mb']:.1f} MB "
              f"({tp['peak_mb'] * 2**20 / rows:.0f} B/row); holding every row {ar['peak_mb']:.1f} MB "
              f"({ar['peak_mb'] * 2**20 / rows:.0f} B/row)")
