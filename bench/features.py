"""Feature extraction throughput: cytoreg's pipeline (DataLoader workers decoding while the model
runs, feature store written per batch) vs a bare batched loop over the same images with the same
model and preprocessing, in one process; then a warm rerun served from the feature store.

    python bench/features.py [--arch tiny|vit_small_patch14_dinov2] [--images 407] [--batch 32]

``tiny`` is the test-suite encoder (decoding dominates); ``vit_small_patch14_dinov2`` is the real
ViT-S/14 geometry of DinoBloom-S / DINOv2-S at 224 px with random weights (compute dominates).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

import torch  # noqa: E402

from cytoreg.engine.execute import CallStats  # noqa: E402
from cytoreg.engine.features import FeatureStore, extract_features  # noqa: E402
from cytoreg.models.timm_features import TimmFeatures  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402
from cytoreg.tasks.samples import ImageRef, open_image, sha256  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--arch", default="tiny")
ap.add_argument("--images", type=int, default=407)
ap.add_argument("--batch", type=int, default=32)
args = ap.parse_args()

paths = sorted((Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc").rglob("*.jpg"))[:args.images]
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    if args.arch == "tiny":
        from tiny_features import save_tiny_dinobloom, spec_text

        save_tiny_dinobloom(tmp / "ckpt.pth")
        text = spec_text("bench", tmp / "ckpt.pth").replace("batch_size: 32, workers: 0", f"batch_size: {args.batch}")
    else:
        import timm

        model = timm.create_model(args.arch, pretrained=False, img_size=224, num_classes=0)
        torch.save({"teacher": {f"backbone.{k}": v for k, v in model.state_dict().items()}}, tmp / "ckpt.pth")
        text = (f"spec: model/v1\nname: bench\nadapter: timm\nparams: {{arch: {args.arch}, checkpoint: '{tmp / 'ckpt.pth'}', "
                f"img_size: 224}}\nexecution: {{batch_size: {args.batch}}}\n")
    (tmp / "specs").mkdir()
    (tmp / "specs" / "m.yaml").write_text(text)
    spec = Catalog.load([tmp / "specs"]).model("bench")

    bare = TimmFeatures(spec)
    bare.load()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(paths), args.batch):
            x = torch.stack([bare.preprocess(open_image(p.read_bytes(), str(p))) for p in paths[s:s + args.batch]])
            bare._model(x)
    t_bare = time.perf_counter() - t0

    ad = TimmFeatures(spec)
    refs = [ImageRef(path=p) for p in paths]
    t0 = time.perf_counter()
    shas = [sha256(r.read_bytes()) for r in refs]
    store = FeatureStore(tmp / "features", ad.fingerprint(), ad.feature_keys())
    errors = extract_features(ad, refs, shas, store, stats=CallStats())
    t_ours = time.perf_counter() - t0
    assert not errors
    t0 = time.perf_counter()
    store2 = FeatureStore(tmp / "features", ad.fingerprint(), ad.feature_keys())
    extract_features(ad, refs, [sha256(r.read_bytes()) for r in refs], store2)
    X = store2.matrix("cls", shas)
    t_warm = time.perf_counter() - t0
    print(f"{len(paths)} images, arch {args.arch}, batch {args.batch}, feature dim {X.shape[1]}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"bare batched loop {t_bare:.2f} s; cytoreg {t_ours:.2f} s (hashing, workers, store); "
          f"warm rerun from the store {t_warm:.2f} s")
    print(f"throughput cytoreg / bare: {t_bare / t_ours:.2f}")
    print(f"warm rerun speed-up vs bare: {t_bare / t_warm:.1f}x")
