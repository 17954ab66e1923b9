"""A CLIP zero-shot run on demo (407 images) with the ViT-B-32 architecture (random weights,
built and saved locally like a hub repo), then the same command again, fully cached: each in a
fresh interpreter, as a user runs them. Prints the rerun's wall time (median of --runs), the
first run / rerun ratio, and the heavy libraries each one imported.

    python bench/clip_rerun.py [--arch ViT-B-32|tiny] [--runs 3]
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from _cli import run_cli  # noqa: E402
from _report import emit, median, row  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--arch", default="ViT-B-32")
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    from tiny_clip import save_open_clip_arch, save_tiny_clip

    folder = save_tiny_clip(tmp / "m") if args.arch == "tiny" else save_open_clip_arch(args.arch, tmp / "m")
    d = tmp / "specs"
    d.mkdir()
    (d / "m.yaml").write_text(f"spec: model/v1\nname: bench-clip\nadapter: open_clip\n"
                              f"params: {{model: 'local-dir:{folder}'}}\n")
    argv = ["eval", "--tasks", "demo", "--models", "bench-clip", "--include", str(d),
            "--output", str(tmp / "run"), "--no-progress"]
    first, first_cpu, heavy_first = run_cli(argv, tmp / "cache", tmp)
    reruns = [run_cli(argv, tmp / "cache", tmp) for _ in range(args.runs)]
    rerun, rerun_cpu = median([w for w, _, _ in reruns]), median([c for _, c, _ in reruns])
    heavy = sorted({m for _, _, h in reruns for m in h})
    print(f"CLIP {args.arch} zero-shot on demo: first run {first:.2f} s (imported {heavy_first}); fully cached "
          f"rerun median {rerun:.2f} s {[round(w, 2) for w, _, _ in reruns]} (imported {heavy or 'nothing heavy'}); "
          f"CPU (user+sys): first {first_cpu:.2f} s, rerun {rerun_cpu:.2f} s")
    emit([row(f"CLIP {args.arch} fully cached rerun (wall)", rerun, 1.5),
          row(f"CLIP {args.arch} fully cached rerun, CPU (user+sys)", rerun_cpu, 1.5),
          row(f"CLIP {args.arch} first run / cached rerun (wall)", first / rerun, 10, "x", True),
          row("CLIP cached rerun: torch/open_clip/sklearn/scipy/transformers imported",
              float(len(set(heavy) - {"PIL", "openai"})), 0.0, "",
              note=f"imported: {heavy or 'none'} (PIL: the image pre-check decodes every test image)")])
