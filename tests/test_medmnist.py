"""MedMNIST+ built-in tasks: the published numbers in the specs, and the real BloodMNIST subset
(tests/fixtures/bloodmnist, cut from the official file; see its SOURCE.md) read through the
built-in spec with the data root overridden."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cytoreg.cli import main
from cytoreg.datahub.spec import read_download
from cytoreg.registry.catalog import Catalog

FIX = Path(__file__).parent / "fixtures" / "bloodmnist"
BLOOD = ["basophil", "eosinophil", "erythroblast", "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
         "lymphocyte", "monocyte", "neutrophil", "platelet"]


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cytoreg-data"
    (root / "medmnist").mkdir(parents=True)
    (root / "medmnist" / "bloodmnist.npz").symlink_to(FIX / "bloodmnist_subset.npz")
    monkeypatch.setenv("CYTOREG_DATA", str(root))
    return root


def test_published_numbers_are_in_the_specs():
    cat = Catalog.load()
    names = {f"{flag}{suffix}" for flag in ("bloodmnist", "pathmnist", "dermamnist")
             for suffix in ("", "-64", "-128", "-224")}
    assert names <= set(cat.tasks.names())
    blood = cat.task("bloodmnist")
    assert blood.get("labels") == BLOOD and blood.get("data")["class_names"] == BLOOD
    ref = blood.get("reference")
    assert ref["published_split_sizes"] == {"train": 11959, "val": 1712, "test": 3421}
    assert ref["published_counts"] == dict(zip(BLOOD, [1218, 3117, 1551, 2895, 1214, 1420, 3329, 2348]))
    assert sum(ref["published_counts"].values()) == 11959 + 1712 + 3421 == 17092
    assert cat.task("pathmnist").get("reference")["published_split_sizes"] == {"train": 89996, "val": 10004,
                                                                               "test": 7180}
    assert cat.task("dermamnist").get("reference")["published_split_sizes"] == {"train": 7007, "val": 1003,
                                                                                "test": 2005}
    assert cat.task("dermamnist").get("license") == "CC BY-NC 4.0"
    # MD5s as MedMNIST publishes them (the 28 and 224 px ones are also in shared/reference/datasets.md §10)
    md5 = {n: read_download(cat.task(n)).files[0] for n in ("bloodmnist", "bloodmnist-224", "pathmnist",
                                                            "pathmnist-224", "dermamnist", "dermamnist-224")}
    assert {n: (f.algo, f.digest) for n, f in md5.items()} == {
        "bloodmnist": ("md5", "7053d0359d879ad8a5505303e11de1dc"),
        "bloodmnist-224": ("md5", "b718ff6835fcbdb22ba9eacccd7b2601"),
        "pathmnist": ("md5", "a8b06965200029087d5bd730944a56c1"),
        "pathmnist-224": ("md5", "2c51a510bcdc9cf8ddb2af93af1eadec"),
        "dermamnist": ("md5", "0744692d530f8e62ec473284d019b0c7"),
        "dermamnist-224": ("md5", "8974907d8e169bef5f5b96bc506ae45d")}
    assert md5["bloodmnist-224"].url == "https://zenodo.org/records/10519652/files/bloodmnist_224.npz?download=1"
    assert cat.task("bloodmnist-64").get("data")["file"] == "bloodmnist_64.npz"
    assert cat.task("bloodmnist-64").get("labels") == BLOOD  # inherited


def test_the_subset_loads_through_the_builtin_spec(data_root):
    from cytoreg.tasks.kinds import source_stream

    spec = Catalog.load().task("bloodmnist")
    stream, _ = source_stream(spec)
    samples = list(stream())
    truth = {(r["split"], int(r["subset_index"])): int(r["label"])
             for r in csv.DictReader(open(FIX / "bloodmnist_subset_indices.csv"))}
    assert len(samples) == 240  # test split of the subset: 30 per class
    for s in samples:
        assert s.label == BLOOD[truth[("test", s.meta["index"])]]
    raw = np.load(FIX / "bloodmnist_subset.npz", allow_pickle=False)
    from PIL import Image
    import io

    img = np.asarray(Image.open(io.BytesIO(samples[7].image.loader())))
    np.testing.assert_array_equal(img, raw["test_images"][7])  # lossless PNG of the stored pixels


def test_verify_reports_the_subset_against_the_published_numbers(data_root, capsys):
    assert main(["data", "verify", "bloodmnist", "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["splits"] == [{"split": "train", "expected": 11959, "found": 160},
                             {"split": "val", "expected": 1712, "found": 80},
                             {"split": "test", "expected": 3421, "found": 240}]
    assert [(c["label"], c["found"]) for c in rep["classes"]] == [(lab, 60) for lab in BLOOD]
    assert rep["classes"][0]["status"] == "missing 1158"
    path = str(data_root / "medmnist" / "bloodmnist.npz")
    assert rep["checksums"][path].startswith("MISMATCH: MD5 ") and rep["checksums"][path].endswith(
        "published 7053d0359d879ad8a5505303e11de1dc")


def test_eval_runs_on_the_subset(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["eval", "--tasks", "bloodmnist", "--models", "random", "-o", str(out), "--no-progress",
                 "--bootstrap", "50"]) == 0
    # a subset is not the published file: the run says so (it used to pass without a word)
    err = " ".join(capsys.readouterr().err.split())
    assert "bloodmnist: the data holds 240 test rows, the published test split has 3421" in err
    task = json.loads((out / "results.json").read_text())["tasks"]["bloodmnist"]
    assert task["labels"] == BLOOD
    assert task["class_counts"] == {lab: 29 for lab in BLOOD}  # 30 per class, one kept as the few-shot example


def test_a_missing_file_points_at_data_fetch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path / "nothing"))
    assert main(["eval", "--tasks", "bloodmnist-128", "--models", "random", "-o", str(tmp_path / "run"),
                 "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(tmp_path / "nothing" / "medmnist") in err and "cytoreg data fetch bloodmnist-128" in err
