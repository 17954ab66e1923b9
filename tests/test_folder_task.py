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
    # the smallest class has 58 images: 1 few-shot, (58 - 1) // 2 = 28 test (< seed A's 50), the rest train
    assert spec["sampling"] == {"seed": 42, "fewshot_per_class": 1, "test_per_class": 28, "train_per_class": "all",
                                "order": ["fewshot", "test", "train"]}
    assert spec["kind"] == "probe" and spec["settings"] == ["zero_shot", "few_shot", "probe"]
    assert "1 few-shot example, 28 test images" in spec["description"]


def test_eval_on_a_folder_end_to_end(my_cells, tmp_path, monkeypatch):
    monkeypatch.chdir(my_cells.parent)
    out = tmp_path / "run"
    assert main(["eval", "--tasks", "./my_cells", "--models", "random,prior", "-o", str(out), "--no-progress",
                 "--bootstrap", "100"]) == 0
    res = json.loads((out / "results.json").read_text())
    task = res["tasks"]["my_cells"]
    assert task["labels"] == FOLDERS and task["origin"] == f"folder {my_cells.resolve()}"
    # every class has 58-60 images: one few-shot example reserved, then 28 test images each
    assert task["class_counts"] == {f: 28 for f in FOLDERS} and task["n_test"] == 224
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all(s["label"] == s["id"].split("/")[0] for s in samples)  # label = the class folder
    assert len({s["id"] for s in samples}) == 224
    for ev in res["evaluations"]:
        rows = [s for s in samples if s["model"] == ev["model"]]
        y, p = [s["label"] for s in rows], [s["parsed"] for s in rows]
        assert ev["n"] == 224
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
    assert res["tasks"]["pairs"]["class_counts"] == {"BASOPHIL": 2, "PLATELET": 2}  # 6 each: 1 few-shot, 2 test
    assert res["evaluations"][0]["status"] == "complete" and res["evaluations"][0]["n"] == 4


def test_zero_shot_clip_on_a_folder(my_cells, tmp_path):
    pytest.importorskip("open_clip")
    from tiny_clip import save_tiny_clip

    save_tiny_clip(tmp_path / "tiny")
    (tmp_path / "tiny.yaml").write_text(f"spec: model/v1\nname: tiny-clip\nadapter: open_clip\n"
                                        f"params: {{model: 'local-dir:{tmp_path / 'tiny'}'}}\n")
    out = tmp_path / "run"
    assert main(["eval", "--tasks", str(my_cells), "--models", "tiny-clip", "--include", str(tmp_path / "tiny.yaml"),
                 "-o", str(out), "--no-progress", "--bootstrap", "50", "--limit", "24"]) == 0
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted({s["setting"] for s in rows}) == ["probe", "zero_shot"]  # a CLIP model: zero-shot and probed
    samples = [s for s in rows if s["setting"] == "zero_shot"]
    assert len(samples) == 24 and {s["id"] for s in samples} == {s["id"] for s in rows if s["setting"] == "probe"}
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


def _samples(run: Path) -> list[tuple]:
    return sorted((s["model"], s["setting"], s["id"], s["label"], s["parsed"])
                  for s in map(json.loads, (run / "samples.jsonl").read_text().splitlines()))


def test_new_task_writes_the_spec_eval_runs(my_cells, tmp_path, monkeypatch):
    """`cytoreg new task --from-folder ./my_cells` (no NAME: the folder's name) writes exactly
    spec_from_folder's spec, and eval on the written file gives the same samples and numbers as
    eval on the folder (it used to need a NAME and wrote another prompt, without judge or ece)."""
    from cytoreg.registry.yamlio import read_structured

    monkeypatch.chdir(my_cells.parent)
    assert main(["new", "task", "--from-folder", "./my_cells"]) == 0
    written = my_cells.parent / "my_cells.yaml"
    try:
        text = written.read_text()
        assert text.startswith("# Written by `cytoreg new task --from-folder")
        assert read_structured(written) == spec_from_folder(my_cells)
        runs = {}
        for tag, task in (("folder", "./my_cells"), ("spec", str(written))):
            runs[tag] = tmp_path / tag
            assert main(["eval", "--tasks", task, "--models", "random", "-o", str(runs[tag]), "--no-progress",
                         "--bootstrap", "50", "--seed", "3"]) == 0
        assert _samples(runs["folder"]) == _samples(runs["spec"]) and len(_samples(runs["folder"])) > 0
        a, b = (json.loads((runs[t] / "results.json").read_text()) for t in ("folder", "spec"))
        assert [e["metrics"] for e in a["evaluations"]] == [e["metrics"] for e in b["evaluations"]]
        assert "ece" in a["evaluations"][0]["metrics"]
        prompts = spec_from_folder(my_cells)["prompts"]
        assert prompts["judge"].startswith("Chatbot answered: {answer}")
    finally:
        written.unlink(missing_ok=True)


def test_new_task_from_a_csv(my_cells, tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text("path,label\n" + "".join(f"{my_cells}/{f}/{p.name},{f}\n" for f in ("basophil", "platelet")
                                              for p in sorted((my_cells / f).iterdir())[:6]))
    assert main(["new", "task", "--from-folder", str(table), "-o", str(tmp_path / "specs")]) == 0
    from cytoreg.registry.yamlio import read_structured

    got = read_structured(tmp_path / "specs" / "pairs.yaml")
    assert got == spec_from_folder(table) and got["data"]["source"] == "manifest"
    assert got["labels"] == ["basophil", "platelet"]


def test_encoders_are_probed_on_a_folder(my_cells, tmp_path):
    """`eval --tasks ./my_cells --models <encoder>` (used to be refused: "cannot use model ... (features)")
    trains the linear probe on the folder's train split and scores the same test images as the
    zero-shot models; its numbers equal an independent scikit-learn probe on the same features."""
    pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from tiny_features import IMG, save_tiny_dinobloom, spec_text
    from torchvision import transforms

    from cytoreg.tasks.samples import open_image

    model = save_tiny_dinobloom(tmp_path / "DinoBloom-T.pth")
    (tmp_path / "bloom.yaml").write_text(spec_text("tinybloom", tmp_path / "DinoBloom-T.pth"))
    out = tmp_path / "run"
    assert main(["eval", "--tasks", str(my_cells), "--models", "tinybloom,random", "--include",
                 str(tmp_path / "bloom.yaml"), "-o", str(out), "--no-progress", "--bootstrap", "50"]) == 0
    res = json.loads((out / "results.json").read_text())
    task = res["tasks"]["my_cells"]
    ids = task["sample_ids"]
    assert len(ids["fewshot"]) == 8 and len(ids["test"]) == 8 * 28
    assert len(ids["train"]) == 474 - 8 - 224  # every image left after the few-shot and test draws
    from cytoreg.engine.preflight import run_preflight
    from cytoreg.registry.catalog import Catalog
    from cytoreg.scoring import EvalConfig

    cfg = EvalConfig([str(my_cells)], ["tinybloom"], output=tmp_path / "x", include=[str(tmp_path / "bloom.yaml")])
    pre = run_preflight(cfg, Catalog.load(cfg.include), explicit=True)
    assert pre.totals()["images"] == 224 + len(ids["train"])  # --check counts the probe's training images too
    assert not (set(ids["train"]) & set(ids["test"])) and not (set(ids["fewshot"]) & set(ids["test"]))
    evs = {(e["model"], e["setting"]): e for e in res["evaluations"]}
    assert sorted(evs) == [("random", "zero_shot"), ("tinybloom", "probe")]
    probe = evs[("tinybloom", "probe")]
    assert probe["probe"]["n_train"] == len(ids["train"]) and probe["n"] == 224 and "ci" in probe

    tf = transforms.Compose([transforms.Resize((IMG, IMG), interpolation=transforms.InterpolationMode.BICUBIC),
                             transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def feats(sample_ids):
        x = torch.stack([tf(open_image((my_cells / i).read_bytes(), i).convert("RGB")) for i in sample_ids])
        with torch.no_grad():
            return model(x).numpy()

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=0))
    clf.fit(feats(ids["train"]), [i.split("/")[0] for i in ids["train"]])
    proba = clf.predict_proba(feats(ids["test"]))
    y = [i.split("/")[0] for i in ids["test"]]
    pred = clf.classes_[proba.argmax(1)]
    assert probe["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert probe["metrics"]["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"), abs=1e-12)
    assert list(clf.classes_) == FOLDERS
    assert probe["metrics"]["auc_macro"] == pytest.approx(roc_auc_score(y, proba, labels=FOLDERS, multi_class="ovr"),
                                                          abs=1e-6)
    rows = {s["id"]: s for s in map(json.loads, (out / "samples.jsonl").read_text().splitlines())
            if s["model"] == "tinybloom"}
    assert [rows[i]["parsed"] for i in ids["test"]] == list(pred)
    assert np.allclose([[rows[i]["response"][c] for c in FOLDERS] for i in ids["test"]], proba, atol=1e-5)


def test_csv_rows_with_missing_files_are_dropped_and_counted(tmp_path):
    """A CSV row naming a file that does not exist is dropped up front (a stat), counted as
    missing_file with its line, and never sampled (it used to be kept silently, even as the
    few-shot example)."""
    root = tmp_path / "cells"
    rows = []
    for f in ("basophil", "platelet"):
        (root / f).mkdir(parents=True)
        for p in sorted((PBC / f).iterdir())[:3]:
            shutil.copy(p, root / f / p.name)
            rows.append(f"{f}/{p.name},{f}")
    rows.insert(1, "basophil/nothere.jpg,basophil")  # line 3 of the file
    (root / "pairs.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["eval", "--tasks", str(root / "pairs.csv"), "--models", "random", "-o", str(out), "--no-progress",
                 "--bootstrap", "20"]) == 0
    task = json.loads((out / "results.json").read_text())["tasks"]["pairs"]
    data = task["data"]
    assert data["rows_seen"] == 7 and data["kept"] == 6 and data["dropped_total"] == 1
    assert data["dropped"]["missing_file"]["count"] == 1
    assert data["dropped"]["missing_file"]["examples"] == [
        {"where": f"{root / 'pairs.csv'}:3", "reason": "line 3: basophil/nothere.jpg not found"}]
    sampled = [i for ids in task["sample_ids"].values() for i in ids]
    assert "basophil/nothere.jpg" not in sampled and len(task["sample_ids"]["fewshot"]) == 2
    assert task["n_test"] == 2  # 3 images per class: 1 few-shot, (3 - 1) // 2 = 1 test, 1 train


def test_a_path_that_is_not_there_is_named_not_listed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for given in ("./nope", "nope/", "~/nope-cytoreg", "cells.csv", "sub/cells.tsv"):
        assert main(["eval", "--tasks", given, "--models", "random", "-o", str(tmp_path / "r")]) != 0
        err = capsys.readouterr().err
        where = Path(given).expanduser().resolve()
        assert f"{given}: no such folder or CSV (looked at {where})" in err, err
        assert "unknown task" not in err and "han-t1-crc" not in err  # no list of every task name
    (tmp_path / "notes.txt").write_text("x")
    assert main(["eval", "--tasks", "./notes.txt", "--models", "random", "-o", str(tmp_path / "r")]) != 0
    assert "./notes.txt: not a folder of class sub-folders, a .csv/.tsv of path,label, nor a task spec file" in \
        capsys.readouterr().err
    assert main(["eval", "--tasks", "nope", "--models", "random", "-o", str(tmp_path / "r")]) != 0
    assert "unknown task 'nope'" in capsys.readouterr().err  # a bare name is still looked up by name
    assert main(["new", "task", "--from-folder", "./nope"]) != 0
    assert f"--from-folder nope: no such folder or CSV (looked at {tmp_path / 'nope'})" in capsys.readouterr().err


def test_a_registered_name_beside_a_same_named_folder_says_which_ran(my_cells, tmp_path, monkeypatch, capsys):
    work = tmp_path / "w"
    shutil.copytree(my_cells, work / "demo")
    monkeypatch.chdir(work)
    assert main(["eval", "--tasks", "demo", "--models", "random", "-o", str(tmp_path / "a"), "--no-progress",
                 "--bootstrap", "10", "--limit", "8"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: --tasks demo")]
    assert notes == ["note: --tasks demo: using the registered task 'demo' (built-in), not the folder or file "
                     "./demo; to run that, pass --tasks ./demo"]
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["tasks"]["demo"]["origin"] == "built-in"
    assert main(["eval", "--tasks", "./demo", "--models", "random", "-o", str(tmp_path / "b"), "--no-progress",
                 "--bootstrap", "10", "--limit", "8"]) == 0
    assert "note:" not in capsys.readouterr().err
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert res["tasks"]["demo"]["origin"] == f"folder {(work / 'demo').resolve()}"


def test_help_names_folders_and_csvs(capsys):
    for argv, words in ((["eval", "--help"], ["one sub-folder per class", "CSV/TSV with columns path,label"]),
                        (["new", "--help"], ["CSV/TSV with columns path,label"])):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        for w in words:
            assert w in text, (argv, w)


def test_a_folder_too_small_to_train_a_probe_still_runs_zero_shot(tmp_path):
    """Two images per class leave none to train on (1 few-shot, 1 test): the spec says so and is a
    zero-/few-shot task, instead of failing with "no training images"."""
    for f in ("basophil", "platelet"):
        (tmp_path / "tiny" / f).mkdir(parents=True)
        for p in sorted((PBC / f).iterdir())[:2]:
            shutil.copy(p, tmp_path / "tiny" / f / p.name)
    spec = spec_from_folder(tmp_path / "tiny")
    assert spec["kind"] == "classification" and "probe" not in spec and spec["settings"] == ["zero_shot", "few_shot"]
    assert "no linear probe (it needs 3+ images in a class)" in spec["description"]
    out = tmp_path / "run"
    assert main(["eval", "--tasks", str(tmp_path / "tiny"), "--models", "random", "-o", str(out), "--no-progress",
                 "--bootstrap", "10"]) == 0
    task = json.loads((out / "results.json").read_text())["tasks"]["tiny"]
    assert task["n_test"] == 2 and len(task["sample_ids"]["fewshot"]) == 2 and task["sample_ids"]["train"] == []


def test_a_vlm_is_asked_zero_and_few_shot_on_the_folder_split(my_cells, tmp_path):
    """A generative model on a folder task (a probe task offering every setting) gets seed A's
    prompt zero-shot and few-shot, the few-shot examples being the split's few-shot images."""
    import hashlib

    from fake_openai import FakeOpenAI, image_hashes

    folder_of = {hashlib.sha256(p.read_bytes()).hexdigest(): p.parent.name
                 for p in my_cells.rglob("*.jpg")}

    def oracle(body):  # names the class of the last image (the sample)
        return f"**{folder_of[image_hashes(body)[-1]]}**"

    with FakeOpenAI(oracle) as srv:
        (tmp_path / "vlm.yaml").write_text(f"spec: model/v1\nname: fake-vlm\nadapter: openai\n"
                                           f"params: {{model: fake, base_url: '{srv.base_url}'}}\n")
        out = tmp_path / "run"
        assert main(["eval", "--tasks", str(my_cells), "--models", "fake-vlm", "--include", str(tmp_path / "vlm.yaml"),
                     "-o", str(out), "--no-progress", "--bootstrap", "10", "--limit", "16"]) == 0
        bodies = list(srv.requests)
    res = json.loads((out / "results.json").read_text())
    evs = {e["setting"]: e for e in res["evaluations"]}
    assert sorted(evs) == ["few_shot", "zero_shot"]
    assert all(e["n"] == 16 and e["metrics"]["accuracy"] == 1.0 for e in evs.values())
    shots = res["tasks"]["my_cells"]["sample_ids"]["fewshot"]
    shot_sha = [hashlib.sha256((my_cells / i).read_bytes()).hexdigest() for i in sorted(shots)]  # label order
    few = [b for b in bodies if len(image_hashes(b)) == 9]
    zero = [b for b in bodies if len(image_hashes(b)) == 1]
    assert len(few) == 16 and len(zero) == 16
    assert image_hashes(few[0])[:8] == shot_sha
    texts = [p["text"] for p in few[0]["messages"][-1]["content"] if p["type"] == "text"]
    assert texts[:8] == [f"The cell_type in this image is {f}." for f in FOLDERS]
    assert zero[0]["messages"][-1]["content"][0]["text"] == seed_prompts(FOLDERS)["zero_shot"]
