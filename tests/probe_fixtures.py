"""The probe benchmarks' datasets in their published layouts, built small from the shipped PBC
images (the pixels do not matter to loaders): Kather NCT-CRC-HE-100K / CRC-VAL-HE-7K, PanNuke
folds with instance masks hitting each branch of the benign/malignant rule, ISIC 2018 Task 3
one-hot CSVs, ISIC 2020 and EyePACS / APTOS manifests."""
from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
from PIL import Image

PBC = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc/PBC_dataset_normal_DIB"
CRC = ["ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]
ISIC = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def _pool():
    return itertools.cycle(sorted(PBC.rglob("*.jpg")))


def build_kather(root: Path, pool) -> None:
    for name, per, tag in (("NCT-CRC-HE-100K", 3, ""), ("CRC-VAL-HE-7K", 2, "TCGA-")):
        for c in CRC:
            d = root / "kather" / name / c
            d.mkdir(parents=True)
            for i in range(per):
                Image.open(next(pool)).convert("RGB").resize((224, 224)).save(d / f"{c}-{tag}AAAA{i:04d}.tif")


def _mask(neoplastic: int, other: int) -> np.ndarray:
    m = np.zeros((256, 256, 6), dtype=np.float64)
    for k in range(neoplastic):
        m[k, :4, 0] = k + 1  # one instance id per nucleus
    for k in range(other):
        m[100 + k, :4, 1] = 500 + k
    return m


#: (neoplastic, other nuclei) -> expected label (None: excluded)
PANNUKE_CASES = [((0, 0), None), ((0, 3), "benign"), ((12, 8), "malignant"), ((12, 38), None), ((5, 0), None),
                 ((10, 20), "malignant")]


def build_pannuke(root: Path, pool) -> None:
    for k, folder in ((1, "Fold 1"), (2, "Fold2"), (3, "Fold 3")):  # the zips have a space; some copies drop it
        img_dir = root / "pannuke" / folder / "images" / f"fold{k}"
        mask_dir = root / "pannuke" / folder / "masks" / f"fold{k}"
        img_dir.mkdir(parents=True)
        mask_dir.mkdir(parents=True)
        n = len(PANNUKE_CASES)
        images = np.stack([np.asarray(Image.open(next(pool)).convert("RGB").resize((256, 256)), dtype=np.float64)
                           for _ in range(n)])
        np.save(img_dir / "images.npy", images)
        np.save(img_dir / "types.npy", np.array(["Breast", "Colon", "Adrenal_gland", "Bile-duct", "Skin", "Lung"]))
        np.save(mask_dir / "masks.npy", np.stack([_mask(*c) for c, _ in PANNUKE_CASES]))


def build_isic2018(root: Path, pool) -> None:
    base = root / "isic2018"
    for split, per in (("Training", 2), ("Test", 1)):
        (base / f"ISIC2018_Task3_{split}_Input").mkdir(parents=True)
        gt = base / f"ISIC2018_Task3_{split}_GroundTruth"
        gt.mkdir(parents=True)
        with (gt / f"ISIC2018_Task3_{split}_GroundTruth.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", *ISIC])
            n = 0
            for c in ISIC:
                for _ in range(per):
                    name = f"ISIC_{(0 if split == 'Training' else 1000000) + n:07d}"
                    Image.open(next(pool)).convert("RGB").resize((60, 45)).save(
                        base / f"ISIC2018_Task3_{split}_Input" / f"{name}.jpg")
                    w.writerow([name, *["1.0" if x == c else "0.0" for x in ISIC]])
                    n += 1


def build_isic2020(root: Path, pool) -> None:
    base = root / "isic2020"
    (base / "train").mkdir(parents=True)
    with (base / "ISIC_2020_Training_GroundTruth.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_name", "patient_id", "sex", "age_approx", "anatom_site_general_challenge", "diagnosis",
                    "benign_malignant", "target"])
        for i in range(8):
            name = f"ISIC_{2000000 + i:07d}"
            Image.open(next(pool)).convert("RGB").resize((60, 40)).save(base / "train" / f"{name}.jpg")
            bad = i % 4 == 0
            w.writerow([name, f"IP_{i // 2:07d}", "male", "45.0", "torso", "melanoma" if bad else "nevus",
                        "malignant" if bad else "benign", int(bad)])


def build_dr(root: Path, pool) -> None:
    for name, manifest, cols, folder, ext in (("eyepacs", "trainLabels.csv", ("image", "level"), "train", "jpeg"),
                                              ("aptos", "train.csv", ("id_code", "diagnosis"), "train_images", "png")):
        base = root / name
        (base / folder).mkdir(parents=True)
        with (base / manifest).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for i in range(10):
                iid = f"{i + 10}_left" if name == "eyepacs" else f"{i:04x}c3d5e1"
                Image.open(next(pool)).convert("RGB").resize((64, 64)).save(
                    base / folder / f"{iid}.{ext}", format="JPEG" if ext == "jpeg" else "PNG")
                w.writerow([iid, i % 5])


def build_probe_data(root: Path) -> Path:
    pool = _pool()
    for fn in (build_kather, build_pannuke, build_isic2018, build_isic2020, build_dr, build_padchest, build_glaucoma, build_knee):
        fn(root, pool)
    return root


PADCHEST_ROWS = [  # (Labels cell, how many rows)
    ("['normal']", 6), ("['pleural effusion', 'cardiomegaly']", 4), ("['pleural effusion']", 3),
    ("['cardiomegaly', 'aortic elongation']", 3), ("['COPD signs']", 2),
]


def build_padchest(root: Path, pool) -> None:
    """PadChest's CSV (Labels as Python list literals) and 16-bit PNGs under <ImageDir>/."""
    base = root / "padchest"
    base.mkdir(parents=True)
    with (base / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ImageID", "ImageDir", "StudyDate_DICOM", "Projection", "Labels"])
        n = 0
        for labels, count in PADCHEST_ROWS:
            for _ in range(count):
                d = base / str(n % 3)
                d.mkdir(exist_ok=True)
                name = f"{216840111366964012 + n}_{n:04d}.png"
                arr = np.asarray(Image.open(next(pool)).convert("L").resize((64, 64)), dtype=np.uint16) * 257
                Image.fromarray(arr).save(d / name)
                w.writerow([name, n % 3, "20150101", "PA", labels])
                n += 1


def build_glaucoma(root: Path, pool) -> None:
    """AIROGS (train_labels.csv; images spread over the archive folders 0/ ... 5/) and the Kaggle
    ODIR-5K full_df.csv (one row per eye, labels as list literals)."""
    base = root / "airogs"
    for k in range(6):
        (base / str(k)).mkdir(parents=True)
    with (base / "train_labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["challenge_id", "class"])
        for i in range(12):
            cid = f"TRAIN{i:06d}"
            Image.open(next(pool)).convert("RGB").resize((64, 64)).save(base / str(i % 6) / f"{cid}.jpg")
            w.writerow([cid, "RG" if i % 3 == 0 else "NRG"])
    odir = root / "odir"
    (odir / "preprocessed_images").mkdir(parents=True)
    with (odir / "full_df.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus", "N", "D", "G", "C", "A", "H",
                    "M", "O", "filepath", "labels", "target", "filename"])
        for i, lab in enumerate(["['N']", "['G']", "['D']", "['G']", "['N']", "['M']"]):
            name = f"{i}_{'left' if i % 2 else 'right'}.jpg"
            Image.open(next(pool)).convert("RGB").resize((64, 64)).save(odir / "preprocessed_images" / name)
            w.writerow([i, 60, "Female", f"{i}_left.jpg", f"{i}_right.jpg", 0, 0, int("G" in lab), 0, 0, 0, 0, 0,
                        f"../input/{name}", lab, "[0, 0, 1, 0, 0, 0, 0, 0]", name])


def build_knee(root: Path, pool) -> None:
    for split, per in (("train", 3), ("val", 1), ("test", 2)):
        for grade in range(5):
            d = root / "kneeKL224" / split / str(grade)
            d.mkdir(parents=True)
            for i in range(per):
                Image.open(next(pool)).convert("L").resize((224, 224)).save(d / f"9{grade}{i:05d}{'LR'[i % 2]}.png")
