"""Data sources in their published layouts, and seeded sampling."""
import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from cytoreg.errors import DataError
from cytoreg.registry.catalog import Catalog
from cytoreg.registry.builtins import TASK_KINDS
from cytoreg.tasks import sampling
from cytoreg.tasks.samples import ImageRef, Sample

SEED_LABELS = ["Band Neutrophil", "Basophil", "Eosinophil", "Erythroblast", "Lymphocyte", "Metamyelocyte",
               "Monocyte", "Myelocyte", "Platelet", "Promyelocyte", "Segmented Neutrophil"]


def kind_for(name, include=()):
    spec = Catalog.load(include).task(name)
    return TASK_KINDS.get(spec.get("kind"))(spec)


def test_demo_labels_counts_and_exclusions():
    kind = kind_for("demo")
    assert kind.labels == SEED_LABELS
    from cytoreg.registry.builtins import SOURCES

    data = dict(kind.spec.get("data"))
    src = SOURCES.get(data.pop("source"))(data, kind.spec)
    samples = list(src.samples())
    counts = Counter(s.label for s in samples)
    assert counts == {"Basophil": 59, "Eosinophil": 60, "Erythroblast": 59, "Lymphocyte": 58, "Monocyte": 60,
                      "Platelet": 60, "Band Neutrophil": 31, "Segmented Neutrophil": 27, "Myelocyte": 26,
                      "Metamyelocyte": 14, "Promyelocyte": 14}
    reasons = Counter(s["reason"] for s in src.skipped)
    assert reasons["raw label 'IG' excluded by data.label_map"] == 5
    assert reasons["raw label 'NEUTROPHIL' excluded by data.label_map"] == 1
    assert all(s.id.count("/") == 1 for s in samples)  # '<class folder>/<file>'
    prep = kind.prepare()
    test_counts = Counter(s.label for s in prep.test)
    # one few-shot example reserved first, then up to 50 per class
    assert test_counts["Basophil"] == 50 and test_counts["Metamyelocyte"] == 13
    assert len(prep.split.fewshot) == 11
    assert not {s.id for s in prep.test} & {s.id for s in prep.split.fewshot}


def test_acevedo_prompt_is_byte_exact_from_the_seed():
    import json

    ref = SHARED / "reference" / "seed-code-prompts.json"
    if not ref.exists():
        pytest.skip("shared/reference not beside the checkout")
    seed = json.loads(ref.read_text())
    spec = Catalog.load().task("acevedo")
    assert spec.get("prompts")["zero_shot"] == seed["get_prompt"]["Acevedo|0shot_classification|ask"]["cell_type"]
    assert spec.get("labels") == list(seed["Acevedo_DINO_label_index"])
    assert spec.get("prompts")["few_shot"]["rewrites"] == seed["oneshot_prompt_rewrites_in_order"]


def _fake(n_per_class: dict[str, int]):
    return [Sample(f"{lab}/{i:04d}", lab, ImageRef(description="x")) for lab, n in n_per_class.items() for i in range(n)]


def test_sampling_is_seeded_disjoint_and_order_independent():
    data = _fake({"a": 80, "b": 30, "c": 5})
    cfg = {"seed": 42, "test_per_class": 50, "fewshot_per_class": 1, "train_per_class": 10, "val_per_class": 5}
    s1 = sampling.draw(data, ["a", "b", "c"], cfg)
    s2 = sampling.draw(list(reversed(data)), ["a", "b", "c"], cfg)  # listing order must not matter
    assert s1.ids() == s2.ids()
    assert Counter(s.label for s in s1.test) == {"a": 50, "b": 30, "c": 5}
    ids = [set(v) for v in s1.ids().values()]
    assert sum(len(x) for x in ids) == len(set().union(*ids))  # disjoint
    assert {"split": "test", "label": "b", "requested": 50, "available": 30} in s1.shortfalls
    # the test draw is pandas' sample(frac=1, random_state=42) of the sorted class rows
    a_rows = sorted(s.id for s in data if s.label == "a")
    perm = np.random.RandomState(42).permutation(80)
    assert [s.id for s in s1.test if s.label == "a"] == [a_rows[i] for i in perm[:50]]
    other = sampling.draw(data, ["a", "b", "c"], dict(cfg, seed=7))
    assert other.ids()["test"] != s1.ids()["test"]


def test_train_subsets_are_nested_as_n_grows():
    data = _fake({"a": 300, "b": 300})
    small = sampling.draw(data, ["a", "b"], {"seed": 1, "test_per_class": 50, "train_per_class": 5})
    big = sampling.draw(data, ["a", "b"], {"seed": 1, "test_per_class": 50, "train_per_class": 25})
    for lab in "ab":
        s = [x.id for x in small.train if x.label == lab]
        b = [x.id for x in big.train if x.label == lab]
        assert b[:5] == s


def test_missing_dataset_error_says_where_and_how(monkeypatch, tmp_path):
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path / "nowhere"))
    kind = kind_for("acevedo")
    with pytest.raises(DataError) as err:
        kind.prepare()
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "acevedo") in msg
    assert "data.root" in msg and "acevedo.yaml" in msg
    assert "https://data.mendeley.com/datasets/snkd93bnjr/1" in msg


def write_task(dirpath: Path, name: str, body: str) -> Path:
    p = dirpath / f"{name}.yaml"
    p.write_text(f"spec: task/v1\nname: {name}\nkind: classification\n" + body)
    return p


def test_manifest_source_keeps_metadata_and_maps_labels(tmp_path):
    pbc = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc/PBC_dataset_normal_DIB"
    rows = [("basophil/BA_116477.jpg", "BA", "x1"), ("eosinophil/EO_105272.jpg", "EO", "x2"),
            ("platelet/PLATELET_114736.jpg", "PLT", "x3")]
    man = tmp_path / "m.csv"
    with man.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "code", "scanner"])
        w.writerows(rows)
    write_task(tmp_path, "man", f"data:\n  source: manifest\n  root: {pbc}\n  manifest: {man}\n  label_column: code\n"
               "  label_map: {BA: Basophil, EO: Eosinophil, PLT: null}\nlabels: [Basophil, Eosinophil]\n"
               "sampling: {test_per_class: all}\n")
    from cytoreg.registry.builtins import SOURCES

    spec = Catalog.load([tmp_path]).task("man")
    data = dict(spec.get("data"))
    src = SOURCES.get(data.pop("source"))(data, spec)
    got = list(src.samples())
    assert [(s.label, s.meta["scanner"]) for s in got] == [("Basophil", "x1"), ("Eosinophil", "x2")]
    assert src.skipped[0]["reason"] == "raw label 'PLT' excluded by data.label_map"
    assert got[0].image.read_bytes()[:3] == b"\xff\xd8\xff"


def test_npz_source_on_bloodmnist(tmp_path):
    npz = SHARED / "data" / "bloodmnist" / "bloodmnist_subset.npz"
    if not npz.exists():
        pytest.skip("shared data not beside the checkout")
    names = ["basophil", "eosinophil", "erythroblast", "immature granulocytes", "lymphocyte", "monocyte",
             "neutrophil", "platelet"]
    write_task(tmp_path, "blood", f"data:\n  source: npz\n  file: {npz}\n  split: test\nlabels: {names}\n"
               "sampling: {test_per_class: 3}\n")
    kind = kind_for("blood", [tmp_path])
    prep = kind.prepare()
    z = np.load(npz)
    assert len(prep.test) == sum(min(3, int((z["test_labels"].ravel() == k).sum())) for k in range(8))
    from PIL import Image
    import io

    img = Image.open(io.BytesIO(prep.test[0].image.read_bytes()))
    idx = int(prep.test[0].id.split("/")[1])
    assert np.array_equal(np.asarray(img), z["test_images"][idx])


def test_vlmeval_tsv_and_hf_imagefolder(tmp_path):
    import base64

    pbc = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc/PBC_dataset_normal_DIB"
    img = (pbc / "basophil" / "BA_116477.jpg").read_bytes()
    tsv = tmp_path / "bench.tsv"
    tsv.write_text("index\timage\tquestion\tA\tB\tanswer\n"
                   f"7\t{base64.b64encode(img).decode()}\tWhich cell?\tBasophil\tMonocyte\tA\n"
                   "8\tnot-base64!!\tWhich cell?\tBasophil\tMonocyte\tB\n")
    write_task(tmp_path, "tsvtask", f"data:\n  source: vlmeval_tsv\n  file: {tsv}\n  label_from: answer_text\n"
               "labels: [Basophil, Monocyte]\nsampling: {test_per_class: all}\n")
    kind = kind_for("tsvtask", [tmp_path])
    prep = kind.prepare()
    assert [(s.id, s.label) for s in prep.test] == [("7", "Basophil")]
    assert prep.test[0].image.read_bytes() == img
    assert prep.skipped[0]["reason"] == "image column is not valid base64"

    pytest.importorskip("datasets")
    root = tmp_path / "hf"
    for cls in ("basophil", "monocyte"):
        (root / "train" / cls).mkdir(parents=True)
        for f in sorted((pbc / cls).iterdir())[:3]:
            shutil.copy(f, root / "train" / cls / f.name)
    write_task(tmp_path, "hftask", f"data:\n  source: hf_datasets\n  root: {root}\n  format: imagefolder\n"
               "  label_map: {basophil: Basophil, monocyte: Monocyte}\nlabels: [Basophil, Monocyte]\n"
               "sampling: {test_per_class: all}\n")
    prep = kind_for("hftask", [tmp_path]).prepare()
    assert Counter(s.label for s in prep.test) == {"Basophil": 3, "Monocyte": 3}
