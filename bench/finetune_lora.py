"""LoRA fine-tuning through `cytoreg finetune` on a LLaVA twin built from a config (no download):
trains at one n on the demo images, evaluates the base model (n = 0) and the adapter through the
hf adapter, and prints training time, steps, losses and how many answers the adapter changed.

    python bench/finetune_lora.py --device cpu --hidden 32 --layers 2 --steps 6       # the test's twin
    python bench/finetune_lora.py --device cuda --hidden 1024 --layers 8 --image 224 --steps 40
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--image", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--out", default=None, help="folder for the run (default: a temporary one)")
    a = ap.parse_args()
    import torch

    from tiny_vlm import save_tiny_llava
    from cytoreg.finetune.run import FinetuneConfig, run
    from cytoreg.registry.builtins import TASK_KINDS
    from cytoreg.registry.catalog import Catalog

    root = Path(a.out or tempfile.mkdtemp(prefix="ft-lora-"))
    specs = root / "specs-in"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "task.yaml").write_text(
        "spec: task/v1\nname: demo-ft\nkind: probe\nextends: demo\n"
        "sampling: {seed: 42, test_per_class: 5, train_per_class: 10, val_per_class: 0, fewshot_per_class: 1,"
        " order: [fewshot, test, train]}\nprobe: {method: logistic, seed: 3}\n")
    kind = TASK_KINDS.get("probe")(Catalog.load([str(specs)]).task("demo-ft"))
    model_dir = save_tiny_llava(root / "twin", kind.prompts["zero_shot"] + " " + " ".join(kind.labels),
                                hidden=a.hidden, layers=a.layers, image_size=a.image)
    n_params = sum(p.numel() for p in __import__("transformers").AutoModelForImageTextToText
                   .from_pretrained(str(model_dir)).parameters())
    (specs / "twin.yaml").write_text(
        f"spec: model/v1\nname: twin\nadapter: hf\nparams: {{model: '{model_dir}', dtype: bf16}}\n"
        "generation: {temperature: 0, max_tokens: 6}\nexecution: {batch_size: 16}\n"
        f"finetune: {{epochs: 1, batch_size: 8, lora: {{r: 16, alpha: 32, learning_rate: 0.001, max_steps: {a.steps}}}}}\n")
    t0 = time.perf_counter()
    res = run(FinetuneConfig(task="demo-ft", models=["twin"], ns=[0, a.n], output=root / "run",
                             include=[str(specs)], device=a.device, progress=False, bootstrap=100), print)
    wall = time.perf_counter() - t0
    state = json.loads((root / "run" / "finetune" / "state.json").read_text())
    [adapter] = state["adapters"].values()
    rows = [json.loads(x) for x in (root / "run" / "samples.jsonl").read_text().splitlines()]
    base = {r["id"]: r["response"] for r in rows if r["model"] == "twin"}
    tuned = {r["id"]: r["response"] for r in rows if r["model"] != "twin"}
    f1 = {e["model"]: round(e["metrics"]["f1_weighted"], 4) for e in res["results"]["evaluations"]}
    summary = {"device": a.device, "gpu": torch.cuda.get_device_name(0) if a.device == "cuda" else None,
               "parameters": n_params, "hidden": a.hidden, "layers": a.layers, "image": a.image,
               "examples": adapter["examples"], "steps": adapter["steps"], "dtype": adapter["dtype"],
               "loss_first": adapter["losses"][0], "loss_last": adapter["losses"][-1], "wall_s": round(wall, 1),
               "answers_changed": sum(base[i] != tuned[i] for i in base), "answers": len(base), "f1_weighted": f1,
               "example_answers": {"base": list(base.values())[:3], "lora": list(tuned.values())[:3]}}
    print(json.dumps(summary, indent=1))
    (root / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
