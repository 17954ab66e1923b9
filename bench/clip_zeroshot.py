"""CLIP zero-shot throughput: cytoreg end to end vs a bare batched open_clip loop over the same
images, in the same process. Uses a tiny open_clip model saved to a local folder (or --model).

    python bench/clip_zeroshot.py [--model local-dir:/path] [--batch-size 64]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path



sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

parser = argparse.ArgumentParser()
parser.add_argument("--model", help="open_clip id (default: a model built and saved locally, see --arch)")
parser.add_argument("--arch", default="tiny", help="'tiny' or an open_clip config name (e.g. ViT-B-32): random "
                    "weights of that architecture saved to a local folder, so compute is realistic offline")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--device", default=None)
args = parser.parse_args()

import open_clip  # noqa: E402
import sklearn.metrics  # noqa: E402,F401  one-time import, excluded on both sides like torch/open_clip
import torch  # noqa: E402

from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402
from cytoreg.registry.builtins import TASK_KINDS  # noqa: E402
from cytoreg.tasks.samples import open_image  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    model_id = args.model
    if not model_id:
        from tiny_clip import save_open_clip_arch, save_tiny_clip

        folder = save_tiny_clip(tmp / "tiny") if args.arch == "tiny" else save_open_clip_arch(args.arch, tmp / "arch")
        model_id = f"local-dir:{folder}"
    d = tmp / "specs"
    d.mkdir()
    (d / "m.yaml").write_text(f"spec: model/v1\nname: bench-clip\nadapter: open_clip\nparams: {{model: '{model_id}'}}\n"
                              f"execution: {{batch_size: {args.batch_size}}}\n")
    spec = Catalog.load([d]).task("demo")
    prep = TASK_KINDS.get("classification")(spec).prepare()
    n = len(prep.test)

    # baseline: a plain batched open_clip loop over the same files, same prompts
    t0 = time.perf_counter()
    model, _, pre = open_clip.create_model_and_transforms(model_id)
    tok = open_clip.get_tokenizer(model_id)
    model.eval()
    with torch.inference_mode():
        text = model.encode_text(tok([f"an image of {lab}" for lab in prep.labels]), normalize=True)
        preds = []
        for i in range(0, n, args.batch_size):
            batch = torch.stack([pre(open_image(s.image.read_bytes())) for s in prep.test[i:i + args.batch_size]])
            img = model.encode_image(batch, normalize=True)
            preds += (img @ text.T).argmax(1).tolist()
    bare = time.perf_counter() - t0

    out = tmp / "run"
    cfg = EvalConfig(["demo"], ["bench-clip"], output=out, include=[str(d)], progress=False, bootstrap=0,
                     device=args.device)
    t0 = time.perf_counter()
    res = evaluate(cfg)
    cold = time.perf_counter() - t0
    (out / "cache.sqlite").unlink()
    for f in out.glob("cache.sqlite-*"):
        f.unlink()
    t0 = time.perf_counter()
    evaluate(cfg)
    warm_emb = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate(cfg)
    warm = time.perf_counter() - t0
    print(f"{n} images, model {model_id}, batch {args.batch_size}, device {args.device or 'auto'}")
    print(f"bare open_clip loop {bare:.2f} s ({n / bare:.1f} img/s)")
    print(f"cytoreg cold        {cold:.2f} s ({n / cold:.1f} img/s)  throughput ratio cytoreg/bare = {bare / cold:.2f}")
    print(f"cytoreg, embeddings cached, responses not: {warm_emb:.2f} s (ratio vs cold {cold / warm_emb:.1f}x)")
    print(f"cytoreg warm (response cache) {warm:.2f} s (ratio vs cold {cold / warm:.1f}x)")
