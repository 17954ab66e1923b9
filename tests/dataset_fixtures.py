"""The dataset layout fixtures live in the package (``cytoreg.fixtures``, ``cytoreg data fixtures
DIR``); this module keeps the tests' imports working and adds test-only datasets (a broken one)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from cytoreg.fixtures import *  # noqa: F401,F403
from cytoreg.fixtures import (BMC_N, HICERVIX_N, HICERVIX_ROWS, MLL23_FOLDERS, NEJM_CASES, PBC,  # noqa: F401
                              build_acevedo, build_all, build_bmc, build_hicervix, build_mll23, build_nejm,
                              build_wbcatt)

FIXTURES = Path(__file__).parent / "fixtures"


# -- a small broken dataset: every way a row or an image can go wrong -----------------------------
BROKEN_LABELS = ["Basophil", "Eosinophil", "Lymphocyte"]
#: the upright picture hidden in the EXIF-rotated file: 40 × 20, left half red, right half blue
EXIF_UPRIGHT = (40, 20)


def _jpeg(src: Path, size=(64, 64)) -> bytes:
    import io

    buf = io.BytesIO()
    Image.open(src).convert("RGB").resize(size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width × height black pixels: ~50 kB on disk, 400 M pixels decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def exif_rotated_jpeg() -> bytes:
    """Stored sideways (20 × 40) with EXIF Orientation 6: a viewer shows it as :data:`EXIF_UPRIGHT`."""
    import io

    w, h = EXIF_UPRIGHT
    upright = Image.new("RGB", (w, h), (220, 20, 20))
    upright.paste((20, 20, 220), (w // 2, 0, w, h))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # exif_transpose undoes it with ROTATE_270
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def build_broken(root: Path) -> dict:
    """``root/folder/<Class>/...`` for an imagefolder task and ``root/manifest.csv`` for a manifest
    task over the same files. Returns what a test needs to know: the fate of every file and row."""
    import io
    import os
    import random

    files = sorted(PBC.rglob("*.jpg"))
    good = iter(files[::17])
    folder = root / "folder"
    put: dict[str, bytes | None] = {}

    def add(rel: str, data: bytes | None) -> None:
        put[rel] = data
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            os.symlink("no-such-target.jpg", p)  # dangling symlink
        else:
            p.write_bytes(data)

    for i in (1, 2):
        add(f"Basophil/good_{i}.jpg", _jpeg(next(good)))
        add(f"basophil/lower_{i}.jpg", _jpeg(next(good)))  # lower-case folder: not a task label
    add("Basophil/.DS_Store", b"\0\0\0\1Bud1")
    add("blast/blast_1.jpg", _jpeg(next(good)))  # a class the task does not have
    add("Eosinophil/good_1.jpg", _jpeg(next(good)))
    add("Eosinophil/zero.jpg", b"")
    whole = _jpeg(next(good))
    add("Eosinophil/truncated.jpg", whole[: len(whole) * 3 // 5])
    garbled = bytearray(_jpeg(next(good)))
    rng = random.Random(0)
    for k in range(len(garbled) // 3, 2 * len(garbled) // 3):
        garbled[k] = rng.randrange(256)
    add("Eosinophil/garbled.jpg", bytes(garbled))
    add("Eosinophil/dangling.jpg", None)
    add("Lymphocyte/good_1.jpg", _jpeg(next(good)))
    add("Lymphocyte/bomb.png", bomb_png())
    add("Lymphocyte/exif_rotated.jpg", exif_rotated_jpeg())
    buf = io.BytesIO()
    Image.open(next(good)).convert("CMYK").save(buf, "JPEG")
    add("Lymphocyte/cmyk.jpg", buf.getvalue())
    arr = np.asarray(Image.open(next(good)).convert("L"), dtype=np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")  # mode I;16
    add("Lymphocyte/gray16.png", buf.getvalue())

    rows = [  # id, path, label: what a hand-made manifest gets wrong
        ("m1", "Basophil/good_1.jpg", "Basophil"),
        ("m2", "Eosinophil/good_1.jpg", "Eosinophil"),
        ("m1", "Basophil/good_1.jpg", "Basophil"),          # identical duplicate
        ("m3", "Eosinophil/missing.jpg", "Eosinophil"),     # missing file
        ("m4", "Lymphocyte/good_1.jpg", "Lymphocytes"),     # plural: suggest a label_map line
        ("m5", "Lymphocyte/exif_rotated.jpg", "Neutrophil"),  # not in the label set
        ("m6", "Lymphocyte/cmyk.jpg", "Lymphocyte"),
        ("m7", "Eosinophil/truncated.jpg", "Eosinophil"),
        ("m8", "Eosinophil/dangling.jpg", "Eosinophil"),
    ]
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "path", "label"])
        w.writerows(rows)
    bad_images = {"Eosinophil/zero.jpg": "does not decode", "Eosinophil/truncated.jpg": "does not decode",
                  "Eosinophil/garbled.jpg": "does not decode", "Eosinophil/dangling.jpg": "missing file",
                  "Lymphocyte/bomb.png": "too large"}
    return {"folder": folder, "manifest": root / "manifest.csv", "files": put, "rows": rows,
            "bad_images": bad_images}


def broken_specs(dirpath: Path, info: dict, policy: str | None = "skip") -> Path:
    """Task specs over :func:`build_broken`'s data: ``broken-folder`` and ``broken-manifest``."""
    dirpath.mkdir(parents=True, exist_ok=True)
    extra = f"on_unknown_label: {policy}\n" if policy else ""
    common = f"kind: classification\nlabels: {BROKEN_LABELS}\nsampling: {{test_per_class: all}}\n" + extra + \
        "prompts: {zero_shot: 'Which cell type is this? Answer with one of Basophil, Eosinophil, Lymphocyte.'}\n"
    (dirpath / "broken-folder.yaml").write_text(
        f"spec: task/v1\nname: broken-folder\n{common}data: {{source: imagefolder, root: '{info['folder']}'}}\n")
    (dirpath / "broken-manifest.yaml").write_text(
        f"spec: task/v1\nname: broken-manifest\n{common}"
        f"data: {{source: manifest, root: '{info['folder']}', manifest: '{info['manifest']}', id_column: id}}\n")
    return dirpath
