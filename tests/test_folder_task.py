"""`cytoreg eval --tasks ./folder` (class sub-folders or a CSV of path,label) end to end on a copy of
the shipped PBC images; seed A's prompt pattern checked byte for byte against the acevedo spec."""
from __future__ import annotations

import csv
import json
import shutil
from importlib import resources
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, f1_score

from cytoreg.cli import main
from cytoreg.errors import DataError
from cytoreg.registry.catalog import Catalog
from cytoreg.tasks.folder_task import seed_prompts, spec_from_folder

PBC = Path(str(resources.files("cytoreg"))) / "demo_data/pbc/PBC_dataset_normal_DIB"
FOLDERS = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]


@pytest.fixture(scope="module")
def my_cells(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("byo") / "my_cells"
    shutil.copytree(PBC, dst)
    (dst / "README.txt").write_text("not a class")  # a loose file next to the class folders
    return dst


def test_prompt_pattern_is_seed_a_byte_for_byte():
    acevedo = Catalog.load().task("acevedo")
    got = seed_prompts(acevedo.get("labels"), what="white blood cell types")
    assert got["zero_shot"] == acevedo.get("prompts")["zero_shot"]
    assert got["judge"] == acevedo.get("prompts")["judge"]
    assert got["few_shot"] == acevedo.get("prompts")["few_shot"]
    assert got["clip"] == acevedo.get("prompts")["clip"]


def test_spec_from_folder(my_cells):
    spec = spec_from_folder(my_cells)
    assert spec["name"] == "my_cells" and spec["labels"] == FOLDERS
    assert spec["data"] == {"source": "imagefolder", "root": str(my_cells.resolve()), "label_from": "folder"}
    assert spec["prompts"]["zero_shot"].endswith("(exactly as written here):\n    " + "\n    ".join(FOLDERS))
    assert "Which of the cell types listed below is shown?" in spec["prompts"]["zero_shot"]
    assert spec["prompts"]["clip"]["templates"] == ["an image of {label}"]
    assert spec["sampling"] == {"seed": 42, "test_per_class": 50, "fewshot_per_class": 1, "order": ["fewshot", "test"]}


def test_eval_on_a_folder_end_to_end(my_cells, tmp_path, monkeypatch):
    monkeypatch.chdir(my_cells.parent)
    out = tmp_path / "run"
    assert main(["eval", "--tasks", "./my_cells", "--models", "random,prior", "-o", str(out), "--no-progress",
                 "--bootstrap", "100"]) == 0
    res = json.loads((out / "results.json").read_text())
    task = res["tasks"]["my_cells"]
    assert task["labels"] == FOLDERS and task["origin"] == f"folder {my_cells.resolve()}"
    # every class has 58-60 images: one few-shot example reserved, then 50 test images each
    assert task["class_counts"] == {f: 50 for f in FOLDERS} and task["n_test"] == 400
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all(s["label"] == s["id"].split("/")[0] for s in samples)  # label = the class folder
    assert len({s["id"] for s in samples}) == 400
    for ev in res["evaluations"]:
        rows = [s for s in samples if s["model"] == ev["model"]]
        y, p = [s["label"] for s in rows], [s["parsed"] for s in rows]
        assert ev["n"] == 400
        assert ev["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
        assert ev["metrics"]["f1_weighted"] == pytest.approx(f1_score(y, p, average="weighted", labels=FOLDERS,
                                                                      zero_division=0), abs=1e-12)
        assert "ci" in ev and "f1_weighted" in ev["ci"]


def test_eval_on_a_csv_of_path_label(my_cells, tmp_path):
    # paths relative to the CSV's folder (the run used to score 10 "missing file" errors and exit 0)
    rows = [(f"{my_cells.name}/{f}/{p.name}", f.upper()) for f in ("basophil", "platelet")
            for p in sorted((my_cells / f).iterdir())[:6]]
    table = my_cells.parent / "pairs.csv"
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        w.writerows(rows)
    spec = spec_from_folder(table)
    assert spec["labels"] == ["BASOPHIL", "PLATELET"] and spec["data"]["source"] == "manifest"
    out = tmp_path / "run"
    assert main(["eval", "--tasks", str(table), "--models", "random", "-o", str(out), "--no-progress",
                 "--bootstrap", "50"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["tasks"]["pairs"]["class_counts"] == {"BASOPHIL": 5, "PLATELET": 5}  # 6 each, 1 few-shot
    assert res["evaluations"][0]["status"] == "complete" and res["evaluations"][0]["n"] == 10


def test_zero_shot_clip_on_a_folder(my_cells, tmp_path):
    pytest.importorskip("open_clip")
    from tiny_clip import save_tiny_clip

    save_tiny_clip(tmp_path / "tiny")
    (tmp_path / "tiny.yaml").write_text(f"spec: model/v1\nname: tiny-clip\nadapter: open_clip\n"
                                        f"params: {{model: 'local-dir:{tmp_path / 'tiny'}'}}\n")
    out = tmp_path / "run"
    assert main(["eval", "--tasks", str(my_cells), "--models", "tiny-clip", "--include", str(tmp_path / "tiny.yaml"),
                 "-o", str(out), "--no-progress", "--bootstrap", "50", "--limit", "24"]) == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 24
    for s in samples:  # a probability per folder label, summing to 1
        assert sorted(s["response"]) == FOLDERS and abs(sum(s["response"].values()) - 1) < 1e-4


def test_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "one" / "a").mkdir(parents=True)
    (tmp_path / "one" / "a" / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"found 1 class\(es\) \(a\); a classification task needs at least 2"):
        spec_from_folder(tmp_path / "one")
    (tmp_path / "one" / "b").mkdir()
    with pytest.raises(DataError, match="class folder\\(s\\) b hold no images"):
        spec_from_folder(tmp_path / "one")
    bad = tmp_path / "t.csv"
    bad.write_text("file,class\nx.png,a\n")
    with pytest.raises(DataError, match="needs a header with columns 'path' and 'label' \\(found: file, class\\)"):
        spec_from_folder(bad)


def test_export_takes_a_folder_like_eval(my_cells, tmp_path):
    """`cytoreg export ./my_cells` sends the same samples and prompt `eval --tasks ./my_cells` would
    (export used to look the folder up as a task name and fail)."""
    from cytoreg.interop.requests import export_task

    ex = export_task(str(my_cells), "zero_shot", [], limit=16)
    assert ex.labels == FOLDERS and len(ex.samples) == 16
    assert {s.label for s in ex.samples} == set(FOLDERS)  # stratified over every class folder
    prompt = seed_prompts(FOLDERS)["zero_shot"]  # the folder task's prompt: seed A's pattern, "cell types"
    assert all([p["type"] for p in s.parts] == ["text", "image"] and s.parts[0]["text"] == prompt
               for s in ex.samples)
    rc = main(["export", str(my_cells), "--to", "inspect", "--limit", "16", "-o", str(tmp_path / "x")])
    assert rc == 0 and (tmp_path / "x" / "README.md").exists()
