"""Build every benchmark dataset in its published on-disk layout under one root (what
``CYTOREG_DATA`` points at), from the PBC images cytoreg ships (``cytoreg data fixtures DIR``). Quirks of the real files are
reproduced on purpose: stray ``.DS_Store`` / ``__MACOSX`` / ``._*`` files, BMC's range folders,
MLL23's upper-case ``.TIF`` and nested class folders, CMYK and 16-bit images, odd sizes, HiCervix's
empty hierarchy cells, NEJM's ``"62%"`` votes."""
from __future__ import annotations

import csv
import json
import shutil
import uuid
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

PBC = Path(str(resources.files("cytoreg"))) / "demo_data/pbc/PBC_dataset_normal_DIB"
#: WBCAtt's rows for the shipped PBC images (MIT licence beside it)
WBCATT_ROWS = Path(str(resources.files("cytoreg"))) / "demo_data/wbcatt/wbcatt_demo_rows.csv"

HICERVIX_ROWS = [  # class_name, class_id, level_1, level_2, level_3
    ("Normal", 0, "negative", "Normal", ""), ("ECC", 1, "negative", "ECC", ""), ("RPC", 2, "negative", "RPC", ""),
    ("MPC", 3, "negative", "MPC", ""), ("PG", 4, "negative", "PG", ""), ("Atrophy", 5, "negative", "Atrophy", ""),
    ("EMC", 6, "negative", "EMC", ""), ("HCG", 7, "negative", "HCG", ""), ("ASC-US", 8, "ASC", "ASC-US", ""),
    ("LSIL", 9, "ASC", "LSIL", ""), ("ASC-H", 10, "ASC", "ASC-H", ""), ("HSIL", 11, "ASC", "HSIL", ""),
    ("SCC", 12, "ASC", "SCC", ""), ("AGC", 13, "AGC", "", ""), ("AGC-NOS", 14, "AGC", "AGC-NOS", ""),
    ("AGC-FN", 15, "AGC", "AGC-FN", ""), ("ADC", 16, "AGC", "ADC", ""),
    ("AGC-ECC-NOS", 17, "AGC", "AGC-NOS", "AGC-ECC-NOS"), ("AGC-EMC-NOS", 18, "AGC", "AGC-NOS", "AGC-EMC-NOS"),
    ("ADC-ECC", 19, "AGC", "ADC", "ADC-ECC"), ("ADC-EMC", 20, "AGC", "ADC", "ADC-EMC"),
    ("FUNGI", 21, "microbe", "FUNGI", ""), ("ACTINO", 22, "microbe", "ACTINO", ""), ("TRI", 23, "microbe", "TRI", ""),
    ("HSV", 24, "microbe", "HSV", ""), ("CC", 25, "microbe", "CC", ""),
]
#: test rows per HiCervix class in the fixture (3 each, 2 for the rarest)
HICERVIX_N = {name: (2 if name in ("ADC-EMC", "AGC-EMC-NOS") else 3) for name, *_ in HICERVIX_ROWS}
BMC_N = {"ABE": 2, "ART": 4, "BAS": 2, "BLA": 3, "EBO": 3, "EOS": 2, "FGC": 2, "HAC": 2, "KSC": 2, "LYI": 2,
         "LYT": 3, "MMZ": 2, "MON": 2, "MYB": 2, "NGB": 2, "NGS": 3, "NIF": 2, "OTH": 2, "PEB": 2, "PLM": 2, "PMO": 2}
MLL23_FOLDERS = ["basophil", "eosinophil", "hairy_cell", "lymphocyte", "lymphocyte_large_granular",
                 "lymphocyte_neoplastic", "lymphocyte_reactive", "metamyelocyte", "monocyte", "myeloblast",
                 "myelocyte", "neutrophil_band", "neutrophil_segmented", "normoblast", "plasma_cell",
                 "promyelocyte", "promyelocyte_atypical", "smudge_cell"]
NEJM_CASES = [  # made-up cases in the published JSON format; date, correct letter, votes
    ("oct-13-2005", "E", ["5%", "10%", "15%", "20%", "50%"]),
    ("oct-20-2005", "D", ["10%", "10%", "10%", "60%", "10%"]),
    ("jan-05-2010", "A", ["85%", "5%", "5%", "3%", "2%"]),
    ("feb-11-2011", "B", ["30%", "45%", "10%", "10%", "5%"]),
    ("mar-17-2015", "C", ["40%", "20%", "15%", "15%", "10%"]),
    ("apr-01-2021", "D", ["20%", "20%", "30%", "12%", "18%"]),
    ("may-09-2022", "E", ["25%", "25%", "25%", "20%", "5%"]),
    ("jun-30-2023", "A", ["62%", "18%", "10%", "6%", "4%"]),
]


def _images():
    files = sorted(PBC.rglob("*.jpg"))
    while True:
        yield from files


def build_all(root: Path) -> Path:
    """Every dataset under ``root`` (which must not hold them yet); returns ``root``."""
    root = Path(root)
    clash = [name for name in ("acevedo", "hicervix", "bmc", "wbcatt", "mll23", "nejm") if (root / name).exists()]
    if clash:
        from cytoreg.errors import CytoregError

        raise CytoregError(f"{root} already holds {', '.join(clash)}; give an empty or new folder")
    root.mkdir(parents=True, exist_ok=True)
    pool = _images()
    build_acevedo(root)
    build_hicervix(root, pool)
    build_bmc(root, pool)
    build_wbcatt(root)
    build_mll23(root, pool)
    build_nejm(root, pool)
    return root


def build_acevedo(root: Path) -> None:
    dest = root / "acevedo/PBC_dataset_normal_DIB"
    shutil.copytree(PBC, dest)
    (dest / "basophil/.DS_Store").write_bytes(b"\0\0\0\1Bud1")


def build_hicervix(root: Path, pool) -> None:
    base = root / "hicervix"
    header = ["image_name", "class_name", "class_id", "level_1", "level_2", "level_3"]
    for split, per in (("test", HICERVIX_N), ("train", {k: 1 for k in HICERVIX_N})):
        (base / split).mkdir(parents=True)
        rows = []
        for name, cid, l1, l2, l3 in HICERVIX_ROWS:
            for i in range(per[name]):
                image = f"{uuid.uuid5(uuid.NAMESPACE_URL, f'{split}/{name}/{i}')}.jpg"
                rows.append([image, name, cid, l1, l2, l3])
                src = next(pool)
                if name == "SCC" and i == 0 and split == "test":  # a CMYK JPEG, as some scanners write
                    Image.open(src).convert("CMYK").save(base / split / image, "JPEG")
                elif name == "HCG" and i == 0 and split == "test":  # odd size
                    Image.open(src).resize((517, 203)).save(base / split / image, "JPEG")
                else:
                    shutil.copy(src, base / split / image)
        with open(base / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
    (base / "test/.DS_Store").write_bytes(b"\0")


def build_bmc(root: Path, pool) -> None:
    base = root / "bmc/BM_cytomorphology_data"
    for abbr, n in BMC_N.items():
        for i in range(1, n + 1):
            folder = base / abbr
            if abbr == "ART":  # classes over 1,000 images sit in range folders
                folder = folder / ("0001-1000" if i <= 2 else "1001-2000")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(next(pool), folder / f"{abbr}_{i if abbr != 'ART' or i <= 2 else 1000 + i:05d}.jpg")
    (base.parent / "abbreviations.csv").write_text("Abbreviation;Meaning\nABE;Abnormal eosinophil\nART;Artefact\n")


def build_wbcatt(root: Path) -> None:
    base = root / "wbcatt"
    base.mkdir(parents=True)
    with open(WBCATT_ROWS, newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = [k for k in rows[0] if k != "split"]
    for split in ("train", "val", "test"):
        with open(base / f"pbc_attr_v1_{split}.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n", extrasaction="ignore")
            w.writeheader()
            w.writerows(r for r in rows if r["split"] == split)
    for r in rows:
        dest = base / r["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PBC / Path(r["path"]).relative_to("PBC_dataset_normal_DIB"), dest)


def build_mll23(root: Path, pool) -> None:
    base = root / "mll23"
    for folder in MLL23_FOLDERS:
        d = base / folder / folder if folder == "eosinophil" else base / folder  # one nested, as some zips are
        d.mkdir(parents=True)
        for i in range(1, 3):
            im = Image.open(next(pool)).convert("RGB").resize((288, 288))
            if folder == "monocyte" and i == 1:  # a 16-bit greyscale TIFF
                arr = (np.asarray(im.convert("L"), dtype=np.uint16) * 257)
                Image.fromarray(arr).save(d / f"{folder}_{i:04d}.TIF", format="TIFF")
            else:
                im.save(d / f"{folder}_{i:04d}.TIF", format="TIFF")
    (base / "__MACOSX/basophil").mkdir(parents=True)
    (base / "__MACOSX/basophil/._basophil_0001.TIF").write_bytes(b"\0\5\26\7")
    (base / "basophil/._basophil_0002.TIF").write_bytes(b"\0\5\26\7")


def build_nejm(root: Path, pool) -> None:
    base = root / "nejm"
    (base / "images").mkdir(parents=True)
    cases = []
    order = sorted(NEJM_CASES, key=lambda c: c[0])  # image_id follows the alphabetical order of the date string
    for n, (date, correct, votes) in enumerate(NEJM_CASES):
        case = {"image_id": order.index((date, correct, votes)) + 1, "date": date,
                "question": f"A made-up case number {n}. What is the diagnosis?",
                "relevant_context": "no"}
        for j, x in enumerate("ABCDE"):
            case[f"option_{x}"] = f"Diagnosis {x.lower()}{n}"
        for j, x in enumerate("ABCDE"):
            case[f"option_{x}_votes"] = votes[j]
        case.update({"option_most_voted": "ABCDE"[int(np.argmax([float(v[:-1]) for v in votes]))],
                     "correct_answer": correct, "total_number_votes": f"{12345 + n:,}", "brier_score": 0.1})
        cases.append(case)
        if date != "may-09-2022":  # one case without its image: reported as skipped
            from datetime import datetime

            d = datetime.strptime(date, "%b-%d-%Y")
            shutil.copy(next(pool), base / "images" / f"IC{d:%Y%m%d}.jpg")
    (base / "image_challenge_dataset.json").write_text(json.dumps(cases, indent=1))


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m cytoreg.fixtures DIR   (or: cytoreg data fixtures DIR)")
    print(build_all(Path(sys.argv[1])))
