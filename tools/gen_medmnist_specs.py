"""Regenerate the built-in MedMNIST+ task specs (src/cytoreg/tasks/specs/medmnist/).

    python tools/gen_medmnist_specs.py

Every number comes from MedMNIST's own ``medmnist/info.py`` at MedMNIST/MedMNIST@805b742
(v3.0.2): Zenodo URLs, the MD5 the publisher gives per file (MedMNIST publishes MD5, not SHA-256),
label names, split sizes, licence. Per-class counts are given only where they are known exactly
(BloodMNIST: counted in the official 28 px file, shared/data/bloodmnist/SOURCE.md).
Prompts follow seed A's pattern over the labels (cytoreg.tasks.folder_task.seed_prompts).
"""
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from cytoreg.tasks.folder_task import METRICS, SAMPLING, STATISTICS, seed_prompts  # noqa: E402

OUT = Path(__file__).parents[1] / "src/cytoreg/tasks/specs/medmnist"
DATA = "${CYTOREG_DATA:-~/cytoreg-data}/medmnist"
INFO = "MedMNIST/MedMNIST@805b742 medmnist/info.py (v3.0.2)"
ZENODO = "https://zenodo.org/records/10519652"
CITE = ("Yang J. et al. MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image "
        "classification. Scientific Data 10:41 (2023). doi:10.1038/s41597-022-01721-8")

# The 28 px files, byte for byte, on the Hugging Face Hub: albertvillanova/medmnist-v2, data/<flag>.npz,
# added in commit 0472595 ("Add data files"; later commits change only the card and a loading script).
# The commit page lists each file's LFS pointer; bloodmnist's (SHA-256 below, size 35,461,855) was read
# there. No mirror of the 64/128/224 px files was found whose images are the published pixels.
HF_MIRROR = {"repo": "albertvillanova/medmnist-v2", "revision": "0472595ab51916346dc4ad40f7b77551f2171403",
             "source": "https://huggingface.co/datasets/albertvillanova/medmnist-v2/commit/"
                       "0472595ab51916346dc4ad40f7b77551f2171403 (LFS pointers of data/*.npz)"}
HF_SHA256 = {"bloodmnist": "062023e186f537e26b3c21ea3b2614ddfc475e8a14825dfd20663bbb7e37bddc"}

SETS = {
    "bloodmnist": {
        "title": "BloodMNIST", "domain": "haematology", "license": "CC BY 4.0", "what": "blood cell types",
        "noun": "cell type",
        "about": "peripheral blood cells (PBC, Acevedo et al. 2020: 17,092 images, 8 classes), centre-cropped to "
                 "200x200 and resized",
        "source_cite": "Source images: Acevedo A. et al. Data in Brief 30:105474 (2020), doi:10.17632/snkd93bnjr.1",
        "labels": ["basophil", "eosinophil", "erythroblast",
                   "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte",
                   "monocyte", "neutrophil", "platelet"],
        "splits": {"train": 11959, "val": 1712, "test": 3421},
        # official 28 px file, per class train + val + test (shared/data/bloodmnist/SOURCE.md)
        "counts": [852 + 122 + 244, 2181 + 312 + 624, 1085 + 155 + 311, 2026 + 290 + 579, 849 + 122 + 243,
                   993 + 143 + 284, 2330 + 333 + 666, 1643 + 235 + 470],
        "md5": {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
                128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"},
        "size28": 35461855,
    },
    "pathmnist": {
        "title": "PathMNIST", "domain": "histology", "license": "CC BY 4.0", "what": "tissue types",
        "noun": "tissue type",
        "about": "colorectal histology (NCT-CRC-HE-100K split 9:1 into train/val, CRC-VAL-HE-7K as test), 9 tissue "
                 "classes",
        "source_cite": "Source images: Kather J.N. et al. PLoS Med 16(1):e1002730 (2019), doi:10.5281/zenodo.1214456",
        "labels": ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
                   "cancer-associated stroma", "colorectal adenocarcinoma epithelium"],
        "splits": {"train": 89996, "val": 10004, "test": 7180},
        "md5": {28: "a8b06965200029087d5bd730944a56c1", 64: "55aa9c1e0525abe5a6b9d8343a507616",
                128: "ac42d08fb904d92c244187169d1fd1d9", 224: "2c51a510bcdc9cf8ddb2af93af1eadec"},
    },
    "dermamnist": {
        "title": "DermaMNIST", "domain": "dermatology", "license": "CC BY-NC 4.0", "what": "skin lesion types",
        "noun": "lesion type",
        "about": "dermatoscopy (HAM10000, 10,015 images split 7:1:2), 7 diagnoses",
        "source_cite": "Source images: Tschandl P. et al. Sci Data 5:180161 (2018), doi:10.7910/DVN/DBW86T",
        "labels": ["actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                   "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
                   "vascular lesions"],
        "splits": {"train": 7007, "val": 1003, "test": 2005},
        "md5": {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f",
                128: "2defd784463fa5243564e855ed717de1", 224: "8974907d8e169bef5f5b96bc506ae45d"},
    },
}


def _str(dumper, data):
    style = '"' if ("\n" in data or "\t" in data or data != data.strip()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


yaml.add_representer(str, _str)
yaml.Dumper.ignore_aliases = lambda self, data: True  # plain YAML: no &anchors / *aliases


def write(name: str, spec: dict) -> None:
    header = ("# Generated by tools/gen_medmnist_specs.py from MedMNIST's info.py (MedMNIST/MedMNIST@805b742);\n"
              "# edit the generator, not this file.\n")
    text = header + yaml.dump(spec, sort_keys=False, allow_unicode=True, width=100000)
    (OUT / f"{name}.yaml").write_text(text)
    assert yaml.safe_load(text) == spec, name


def file_entry(flag: str, size: int, s: dict) -> dict:
    fname = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    entry = {"url": f"{ZENODO}/files/{fname}?download=1", "name": fname, "md5": s["md5"][size]}
    if size == 28 and "size28" in s:
        entry["size"] = s["size28"]
    return entry


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for flag, s in SETS.items():
        ref = {"source": f"{INFO}; the MedMNIST v2 paper", "published_split_sizes": s["splits"]}
        if "counts" in s:
            ref["published_counts"] = dict(zip(s["labels"], s["counts"]))
        else:
            ref["notes"] = "per-class counts are not in MedMNIST's info.py; verify checks split sizes and the MD5"
        base = {
            "spec": "task/v1", "name": flag, "kind": "classification",
            "description": f"{s['title']} (MedMNIST+, 28x28 px): {s['about']}; the official test split",
            "citation": f"{CITE}. {s['source_cite']}",
            "license": s["license"], "domain": s["domain"], "homepage": "https://medmnist.com/",
            "download_url": ZENODO,
            "layout": f"medmnist/{flag}.npz (28 px) or {flag}_<64|128|224>.npz: keys train/val/test _images "
                      "(N,H,W,3) uint8 and _labels (N,1)",
            "download": {"dest": DATA, "files": [file_entry(flag, 28, s)],
                         "note": "MD5 as published by MedMNIST (info.py); the publisher gives no SHA-256",
                         "hf_mirror": dict(HF_MIRROR, files=[dict({"path": f"data/{flag}.npz", "name": f"{flag}.npz"},
                                                                  **({"sha256": HF_SHA256[flag]}
                                                                     if flag in HF_SHA256 else {}))])},
            "data": {"source": "npz", "root": DATA, "file": f"{flag}.npz", "split": "test",
                     "class_names": s["labels"]},
            "labels": s["labels"], "sampling": dict(SAMPLING), "settings": ["zero_shot", "few_shot"],
            "prompts": dict(seed_prompts(s["labels"], s["what"], s["noun"]),
                            source=f"seed A's prompt pattern (marrlab/vlm_cytomorphology_eval @ 79253f5) over "
                                   f"MedMNIST's label names ({s['what']})"),
            "metrics": list(METRICS), "primary_metric": "f1_weighted", "statistics": dict(STATISTICS),
            "reference": ref,
        }
        write(flag, base)
        for size in (64, 128, 224):
            fname = f"{flag}_{size}.npz"
            write(f"{flag}-{size}", {
                "spec": "task/v1", "name": f"{flag}-{size}", "extends": flag,
                "description": f"{s['title']} (MedMNIST+, {size}x{size} px): {s['about']}; the official test split",
                "download": {"dest": DATA, "files": [file_entry(flag, size, s)],
                             "note": "MD5 as published by MedMNIST (info.py); the publisher gives no SHA-256",
                             "hf_mirror": None},  # the mirror holds the 28 px file only
                "data": {"file": fname},
            })


if __name__ == "__main__":
    main()
