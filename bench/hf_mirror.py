"""`cytoreg data fetch NAME --from hf` against a local Hugging Face Hub stand-in (tests/fake_hf_hub.py).

Builds, in one process, two mirrors of BloodMNIST's size and serves them on 127.0.0.1:
  1. a file mirror: one random file of SIZE MB (the 28 px npz is 35.5 MB) standing for a published
     file with an MD5: cytoreg's fetch (download, size + SHA-256 + MD5 checks, copy into place)
     against a plain `huggingface_hub.snapshot_download` of the same file (the baseline);
  2. a parquet mirror with BloodMNIST's published split sizes (train 11,959 / val 1,712 /
     test 3,421; 28 px PNGs cut from the shipped subset, cycled) and ClassLabel names: cytoreg's
     fetch (download, label mapping, count checks, one file per image in class folders) against a
     plain snapshot_download of the same parquet files.
Prints files written, seconds and the ratio to the baseline (each with its own empty hub cache).

    python bench/hf_mirror.py [--size 35]
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)

import numpy as np  # noqa: E402
from huggingface_hub import constants, snapshot_download  # noqa: E402

from cytoreg.cli import main  # noqa: E402
from fake_hf_hub import FakeHub  # noqa: E402

constants.HF_HUB_OFFLINE = False
ap = argparse.ArgumentParser()
ap.add_argument("--size", type=int, default=35, help="MB of the file mirror")
a = ap.parse_args()
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FIX = Path(__file__).parents[1] / "tests/fixtures/bloodmnist/bloodmnist_subset.npz"
NAMES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
SPLITS = {"train": 11959, "val": 1712, "test": 3421}


def plain(url: str, cache: Path, patterns: list[str]) -> float:
    constants.HF_HUB_CACHE = str(cache)
    t = time.perf_counter()
    snapshot_download("bench/mirror", repo_type="dataset", revision=COMMIT, allow_patterns=patterns, endpoint=url)
    return time.perf_counter() - t


def ours(url: str, cache: Path, spec: Path, name: str) -> float:
    constants.HF_HUB_CACHE = str(cache)
    os.environ["HF_ENDPOINT"] = url
    t = time.perf_counter()
    rc = main(["data", "fetch", name, "--from", "hf", "--include", str(spec), "--no-progress"])
    assert rc == 0, rc
    return time.perf_counter() - t


def parquet_mirror() -> dict[str, bytes]:
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    raw = np.load(FIX, allow_pickle=False)
    imgs = np.concatenate([raw[f"{s}_images"] for s in ("train", "val", "test")])
    labs = np.concatenate([raw[f"{s}_labels"].ravel() for s in ("train", "val", "test")])
    pngs = []
    for arr in imgs:
        buf = io.BytesIO()
        PILImage.fromarray(arr).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    files = {}
    for split, n in SPLITS.items():
        idx = [i % len(pngs) for i in range(n)]
        ds = Dataset.from_dict({"image": [{"bytes": pngs[i], "path": None} for i in idx],
                                "label": [int(labs[i]) for i in idx]},
                               features=Features({"image": Image(), "label": ClassLabel(names=NAMES)}))
        buf = io.BytesIO()
        ds.to_parquet(buf)
        files[f"data/{split}-00000-of-00001.parquet"] = buf.getvalue()
    return files


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    blob = os.urandom(a.size * 1_000_000)
    spec = tmp / "file-mirror.yaml"
    spec.write_text(
        "spec: task/v1\nname: file-mirror\nkind: classification\nlabels: [a, b]\n"
        f"data: {{source: imagefolder, root: {tmp}/d1}}\n"
        f"download:\n  dest: {tmp}/d1\n  files:\n  - url: https://example.org/f.npz\n    name: f.npz\n"
        f"    md5: '{hashlib.md5(blob).hexdigest()}'\n    size: {len(blob)}\n"
        f"  hf_mirror:\n    repo: bench/mirror\n    revision: {COMMIT}\n    files:\n    - path: data/f.npz\n"
        f"      sha256: {hashlib.sha256(blob).hexdigest()}\n")
    with FakeHub("bench/mirror", COMMIT, {"data/f.npz": blob}) as hub:
        base = plain(hub.url, tmp / "c0", ["data/f.npz"])
        t = ours(hub.url, tmp / "c1", spec, "file-mirror")
    print(f"file mirror, {a.size} MB on 127.0.0.1")
    print(f"  plain snapshot_download                      {base:6.2f} s  1.00x")
    print(f"  cytoreg fetch --from hf (+ size, SHA-256, MD5, copy) {t:6.2f} s  {t / base:.2f}x")

    files = parquet_mirror()
    mb = sum(len(v) for v in files.values()) / 1e6
    spec = tmp / "pq-mirror.yaml"
    label_map = "\n".join(f"        {n}: {n}" for n in NAMES)
    spec.write_text(
        "spec: task/v1\nname: pq-mirror\nkind: classification\n" f"labels: {json.dumps(NAMES)}\n"
        f"data: {{source: imagefolder, root: {tmp}/d2/blood/test}}\n"
        "reference:\n  published_split_sizes: {train: 11959, val: 1712, test: 3421}\n"
        f"download:\n  dest: {tmp}/d2\n  hf_mirror:\n    repo: bench/mirror\n    revision: {COMMIT}\n"
        "    parquet:\n      splits: {train: data/train-*.parquet, val: data/val-*.parquet, test: data/test-*.parquet}\n"
        f"      image_column: image\n      label_column: label\n      creates: blood\n      label_map:\n{label_map}\n")
    with FakeHub("bench/mirror", COMMIT, files) as hub:
        base = plain(hub.url, tmp / "c2", ["data/*.parquet"])
        t = ours(hub.url, tmp / "c3", spec, "pq-mirror")
    n = sum(1 for p in (tmp / "d2" / "blood").rglob("*.png"))
    print(f"parquet mirror, {sum(SPLITS.values())} rows in 3 splits ({mb:.1f} MB) on 127.0.0.1")
    print(f"  plain snapshot_download                      {base:6.2f} s  1.00x")
    print(f"  cytoreg fetch --from hf (+ labels, counts, {n} files) {t:6.2f} s  {t / base:.2f}x  "
          f"{n / t:,.0f} files/s")
