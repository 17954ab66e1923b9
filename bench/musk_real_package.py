"""The ``musk`` adapter against the REAL lilab-stanford/MUSK package (not the tests' double).

Builds the real ``musk_large_patch16_384`` architecture with random weights, saves it as the
published checkpoint is laid out (one flat ``model.safetensors``, as xiangjx/musk), runs it through
``cytoreg eval`` (the built-in ``musk`` spec, only ``params.checkpoint`` changed) on demo images,
and compares the probabilities with the README's zero-shot recipe computed here directly: the
README's transform, ``musk.utils.load_model_and_may_interpolate``, ``musk.utils.xlm_tokenizer``
over a tokenizer that encodes as transformers 4's slow ``XLMRobertaTokenizer`` did (built from
sentencepiece alone: under transformers 5 the README's ``XLMRobertaTokenizer(path)`` raises),
``model(..., with_head=True, out_norm=True)`` and ``softmax(model.logit_scale × cosine)``.

MUSK's code cannot ship with cytoreg (CC-BY-NC-ND 4.0); put a copy of the repository outside the
project and run, e.g.:

    git clone https://github.com/lilab-stanford/MUSK /tmp/musk-src   # or an archive of it
    pip install fairscale einops
    PYTHONPATH=src:/tmp/musk-src HF_HUB_OFFLINE=1 python bench/musk_real_package.py --limit 4

Prints the architecture's parameter count, save/eval/recipe times and ``max abs diff`` (the
probabilities in samples.jsonl are stored to 6 decimals)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).parents[1]


class SlowXLMR:
    """transformers 4's ``XLMRobertaTokenizer(spm)`` as far as ``xlm_tokenizer`` uses it: piece p →
    p + 1 (fairseq offset), sentencepiece's <unk> (0) → 3, <s> 0, <pad> 1, </s> 2."""

    bos_token_id, pad_token_id, eos_token_id, unk_token_id = 0, 1, 2, 3

    def __init__(self, spm: Path):
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(spm))

    def encode(self, text: str) -> list[int]:
        return [0, *[p + 1 if p else 3 for p in self.sp.encode(text)], 2]


def real_musk_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("musk")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0])
    ok = (path / "modeling.py").is_file() and "MultiScaleForward" in (path / "utils.py").read_text()
    return path if ok else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=4, help="demo images (stratified, as cytoreg eval --limit)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    pkg = real_musk_dir()
    if pkg is None:
        print("the real MUSK package is not importable: put a copy of github.com/lilab-stanford/MUSK on PYTHONPATH "
              "(see this script's docstring)", file=sys.stderr)
        return 2
    import timm
    import torch
    import torchvision
    from safetensors.torch import save_file
    from timm.data.constants import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from musk import modeling, utils  # noqa: F401 - registers musk_large_patch16_384

    from cytoreg.registry.builtins import TASK_KINDS
    from cytoreg.registry.catalog import Catalog
    from cytoreg.tasks.samples import open_image

    work = args.workdir or Path(tempfile.mkdtemp(prefix="musk-real-"))
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = timm.create_model("musk_large_patch16_384").eval()
    with torch.no_grad():
        model.logit_scale.fill_(3.3)  # distinct from CLIP's init, so exp() vs the parameter would show
    n = sum(p.numel() for p in model.parameters())
    print(f"real musk package: {pkg}")
    print(f"musk_large_patch16_384: {n:,} parameters ({n * 4 / 1e9:.2f} GB fp32, {n * 2 / 1e9:.2f} GB fp16), "
          f"{len(model.state_dict())} tensors, built in {time.perf_counter() - t0:.1f} s")
    wdir = work / "w"
    wdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    save_file(model.state_dict(), str(wdir / "model.safetensors"))
    print(f"saved {wdir / 'model.safetensors'} ({(wdir / 'model.safetensors').stat().st_size / 1e9:.2f} GB) "
          f"in {time.perf_counter() - t0:.1f} s")
    del model
    specs = work / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "m.yaml").write_text(f"spec: model/v1\nname: musk-real\nextends: musk\nparams: {{checkpoint: '{wdir}'}}\n"
                                  "execution: {batch_size: 4, workers: 0}\n")
    out = work / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(pkg.parent), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "cytoreg", "eval", "--tasks", "demo", "--models", "musk-real",
                          "--include", str(specs), "-o", str(out), "--limit", str(args.limit), "--bootstrap", "10",
                          "--no-progress", "--overwrite"], env=env, capture_output=True, text=True)
    print(f"cytoreg eval --limit {args.limit}: exit {run.returncode} in {time.perf_counter() - t0:.1f} s")
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:], file=sys.stderr)
        return 1
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]

    # the README recipe, directly
    t0 = time.perf_counter()
    ref = timm.create_model("musk_large_patch16_384").eval()
    utils.load_model_and_may_interpolate(str(wdir / "model.safetensors"), ref, "model|module", "")
    transform = torchvision.transforms.Compose([
        torchvision.transforms.Resize(384, interpolation=3, antialias=True),
        torchvision.transforms.CenterCrop((384, 384)),
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize(mean=IMAGENET_INCEPTION_MEAN, std=IMAGENET_INCEPTION_STD),
    ])
    tokenizer = SlowXLMR(pkg / "models" / "tokenizer.spm")
    kind = TASK_KINDS.get("classification")(Catalog.load([]).task("demo"))
    labels = list(kind.labels)
    with torch.inference_mode():
        img = torch.stack([transform(open_image(Path(r["image"]).read_bytes())) for r in recs])
        image_embeddings = ref(image=img, with_head=True, out_norm=True)[0]
        rows = []
        for texts in kind.class_prompts():
            enc = [utils.xlm_tokenizer(t, tokenizer, max_len=100) for t in texts]
            text_embeddings = ref(text_description=torch.tensor([e[0] for e in enc]),
                                  padding_mask=torch.tensor([e[1] for e in enc]), with_head=True, out_norm=True)[1]
            rows.append(torch.nn.functional.normalize(text_embeddings.mean(0), dim=0))
        sim = ref.logit_scale * image_embeddings @ torch.stack(rows).T
        prob = sim.softmax(dim=-1).numpy()
    print(f"README recipe computed directly in {time.perf_counter() - t0:.1f} s "
          f"({len(recs)} images, {len(labels)} labels, logit_scale {float(ref.logit_scale):.3f})")
    import numpy as np

    got = np.array([[r["response"][lab] for lab in labels] for r in recs])
    diff = float(np.abs(got - prob).max())
    same = int((got.argmax(1) == prob.argmax(1)).sum())
    print(f"argmax agrees on {same}/{len(recs)} images")
    print(f"max abs diff {diff:.2e} (cytoreg eval vs README recipe; samples.jsonl keeps 6 decimals)")
    return 0 if diff < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
