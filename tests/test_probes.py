"""Frozen features and probes: a DinoBloom-format checkpoint loaded through the real timm path,
VLM hidden states at two layers with each pooling, probe metrics equal to an independent
scikit-learn computation on the demo images, crash-and-resume of feature extraction, MLP heads,
curves and an external test set."""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("timm")
torch = pytest.importorskip("torch")

from tiny_features import IMG, save_tiny_dinobloom, spec_text  # noqa: E402
from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.errors import ModelLoadError  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

PROBE = ("spec: task/v1\nname: demo-probe\nkind: probe\nextends: demo\n"
         "sampling: {seed: 42, test_per_class: 8, train_per_class: 15, val_per_class: 4}\n")


def _transform():
    from torchvision import transforms

    return transforms.Compose([transforms.Resize((IMG, IMG), interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.ToTensor(),
                               transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


@pytest.fixture
def specs(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    model = save_tiny_dinobloom(tmp_path / "DinoBloom-T.pth")
    (d / "bloom.yaml").write_text(spec_text("tinybloom", tmp_path / "DinoBloom-T.pth"))
    (d / "bloom-layers.yaml").write_text(spec_text("tinybloom-layers", tmp_path / "DinoBloom-T.pth", "[0, 1]"))
    (d / "probe.yaml").write_text(PROBE)
    return d, model


def _open(path):
    from cytoreg.tasks.samples import open_image

    return open_image(Path(path).read_bytes(), str(path))


def test_dinobloom_checkpoint_through_timm_equals_the_model(specs):
    from cytoreg.models.timm_features import TimmFeatures

    d, model = specs
    cat = Catalog.load([d])
    ad = TimmFeatures(cat.model("tinybloom-layers"))
    ad.load()
    imgs = sorted(Path(__file__).parents[1].joinpath("src/cytoreg/demo_data/pbc").rglob("*.jpg"))[:5]
    batch = torch.stack([ad.preprocess(_open(p)) for p in imgs])
    x = torch.stack([_transform()(_open(p).convert("RGB")) for p in imgs])
    assert torch.allclose(batch, x)
    got = ad.extract_batch(batch)
    assert sorted(got) == ["block0/cls", "block0/mean", "block1/cls", "block1/mean", "cls"]
    with torch.no_grad():
        ref = model(x).numpy()
        tokens = model.forward_features(x)
        inter = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True, output_fmt="NLC",
                                            return_prefix_tokens=True)
    np.testing.assert_allclose(got["cls"], ref, atol=1e-5)
    np.testing.assert_allclose(got["cls"], tokens[:, 0].numpy(), atol=1e-5)  # CLS after the final norm
    for i, (patches, prefix) in enumerate(inter):
        np.testing.assert_allclose(got[f"block{i}/mean"], patches.mean(1).numpy(), atol=1e-5)
        np.testing.assert_allclose(got[f"block{i}/cls"], prefix[:, 0].numpy(), atol=1e-5)
    assert not np.allclose(got["block0/mean"], got["block1/mean"], atol=1e-3)


def test_missing_and_mismatched_checkpoints_say_what_to_do(specs, tmp_path, monkeypatch):
    from cytoreg.models.timm_features import TimmFeatures

    d, _ = specs
    cat = Catalog.load()
    monkeypatch.delenv("DINOBLOOM_S_CHECKPOINT", raising=False)
    with pytest.raises(ModelLoadError, match="set DINOBLOOM_S_CHECKPOINT .*zenodo.org/records/10908163"):
        TimmFeatures(cat.model("dinobloom-s")).load()
    monkeypatch.setenv("DINOBLOOM_S_CHECKPOINT", str(tmp_path / "DinoBloom-T.pth"))
    with pytest.raises(ModelLoadError, match="does not fit vit_small_patch14_dinov2 .*wrong shape"):
        TimmFeatures(cat.model("dinobloom-s")).load()  # a real ViT-S/14 does not fit the tiny checkpoint
    monkeypatch.setenv("DINOBLOOM_S_CHECKPOINT", str(tmp_path / "nope.pth"))
    with pytest.raises(ModelLoadError, match="nope.pth does not exist"):
        TimmFeatures(cat.model("dinobloom-s")).load()


def test_probe_metrics_equal_an_independent_sklearn_probe(specs, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d, model = specs
    res = evaluate(EvalConfig(["demo-probe"], ["tinybloom"], output=tmp_path / "run", include=[str(d)],
                              progress=False, bootstrap=50))
    from cytoreg.report.results import validate_results

    assert validate_results(json.loads((tmp_path / "run/results.json").read_text())) == []  # setting 'probe' is valid
    (ev,) = res["evaluations"]
    task = res["tasks"]["demo-probe"]
    root = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc/PBC_dataset_normal_DIB"
    labels = task["labels"]
    label_of = {json.loads(l)["id"]: json.loads(l)["label"] for l in (tmp_path / "run/samples.jsonl").read_text().splitlines()}

    def feats(ids):
        x = torch.stack([_transform()(_open(root / i).convert("RGB")) for i in ids])
        with torch.no_grad():
            return model(x).numpy()

    from cytoreg.registry.builtins import TASK_KINDS

    kind = TASK_KINDS.get("probe")(Catalog.load([d]).task("demo-probe"))
    split = kind.prepare().split
    train_ids, test_ids = task["sample_ids"]["train"], task["sample_ids"]["test"]
    assert train_ids == [s.id for s in split.train] and len(train_ids) == ev["probe"]["n_train"]
    assert not set(train_ids) & set(test_ids) and not set(task["sample_ids"]["val"]) & set(test_ids)
    y_train = [s.label for s in split.train]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=0))
    clf.fit(feats(train_ids), y_train)
    proba = clf.predict_proba(feats(test_ids))
    pred = clf.classes_[proba.argmax(1)]
    y_test = [label_of[i] for i in test_ids]
    m = ev["metrics"]
    assert m["accuracy"] == pytest.approx(accuracy_score(y_test, pred), abs=1e-12)
    assert m["f1_weighted"] == pytest.approx(f1_score(y_test, pred, average="weighted"), abs=1e-12)
    assert m["f1_macro"] == pytest.approx(f1_score(y_test, pred, labels=labels, average="macro", zero_division=0),
                                          abs=1e-9)
    full = np.zeros((len(test_ids), len(labels)))
    for j, c in enumerate(clf.classes_):
        full[:, labels.index(c)] = proba[:, j]
    assert m["auc_macro"] == pytest.approx(roc_auc_score(y_test, full, labels=labels, multi_class="ovr",
                                                         average="macro"), abs=1e-6)
    assert ev["ci"]["f1_weighted"]["low"] <= m["f1_weighted"] <= ev["ci"]["f1_weighted"]["high"]


def test_feature_extraction_crash_then_resume_loses_at_most_one_batch(specs, tmp_path, monkeypatch):
    from cytoreg.models.timm_features import TimmFeatures

    d, _ = specs
    (d / "bloom.yaml").write_text(spec_text("tinybloom", tmp_path / "DinoBloom-T.pth").replace("batch_size: 32",
                                                                                                "batch_size: 10"))
    real = TimmFeatures.extract_batch
    calls = []

    def crashing(self, batch):
        calls.append(len(batch))
        if len(calls) == 4:
            raise KeyboardInterrupt  # the process dies in the middle of batch 4
        return real(self, batch)

    monkeypatch.setattr(TimmFeatures, "extract_batch", crashing)
    cfg = EvalConfig(["demo-probe"], ["tinybloom"], output=tmp_path / "run", include=[str(d)], progress=False,
                     bootstrap=10)
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg)
    stored = sum(int(np.load(p, allow_pickle=False)["keys"].shape[0])
                 for p in (tmp_path / "run/features").rglob("part-*.npz"))
    assert stored == 30  # three finished batches on disk; only the fourth is lost
    monkeypatch.setattr(TimmFeatures, "extract_batch", lambda self, b: (calls.append(len(b)), real(self, b))[1])
    calls.clear()
    res = evaluate(cfg)
    n_images = len(set(sum(res["tasks"]["demo-probe"]["sample_ids"].values(), [])))
    assert sum(calls) == n_images - 30  # the rerun extracts only what is missing
    calls.clear()
    again = evaluate(cfg)
    assert calls == [] and again["evaluations"][0]["metrics"] == res["evaluations"][0]["metrics"]


def test_curves_mlp_head_and_layers(specs, tmp_path):
    d, _ = specs
    (d / "probe.yaml").write_text(PROBE + "probe: {method: mlp, n_per_class: [1, 5, 15, 500], fractions: [0.5, 1.0], "
                                          "repeats: 3, seed: 1, mlp: {hidden: 16, epochs: 30, patience: 5}}\n")
    cfg = EvalConfig(["demo-probe"], ["tinybloom-layers"], output=tmp_path / "run", include=[str(d)],
                     progress=False, bootstrap=10)
    res = evaluate(cfg)
    settings = [e["setting"] for e in res["evaluations"]]
    assert settings == ["probe:cls", "probe:block0/cls", "probe:block0/mean", "probe:block1/cls", "probe:block1/mean"]
    ev = res["evaluations"][0]
    assert ev["probe"]["head"] == "mlp" and ev["probe"]["feature_dim"] == 32
    pts = ev["probe"]["curves"]["f1_weighted"]
    assert [p["x"] for p in pts] == [1, 5, 15] and ev["probe"]["curve_points_skipped"] == [500]
    n_train = len(res["tasks"]["demo-probe"]["sample_ids"]["train"])
    assert [p["n_train"] for p in pts] == [11, 55, n_train] and n_train == ev["probe"]["n_train"]
    assert all(p["repeats"] == 3 and p["sd"] >= 0 for p in pts)
    assert [p["x"] for p in ev["probe"]["curves_fraction"]["accuracy"]] == [0.5, 1.0]
    again = evaluate(EvalConfig(["demo-probe"], ["tinybloom-layers"], output=tmp_path / "run2", include=[str(d)],
                                progress=False, bootstrap=10))
    assert again["evaluations"][0]["metrics"] == ev["metrics"]  # seeded MLP: reproducible


def test_external_test_set_view_trains_on_the_task_data(specs, tmp_path):
    from dataset_fixtures import build_all

    d, _ = specs
    data = build_all(tmp_path / "data")
    (d / "heads.yaml").write_text(
        "spec: task/v1\nname: heads\nkind: probe\nextends: demo\n"
        "sampling: {seed: 42, test_per_class: 5, train_per_class: 10}\n"
        "test_sets:\n  mll:\n    data:\n      source: imagefolder\n"
        f"      root: '{data / 'mll23'}'\n      label_from: folder\n"
        "      label_map: {neutrophil_segmented: Segmented Neutrophil, lymphocyte: Lymphocyte, monocyte: Monocyte,"
        " eosinophil: Eosinophil, basophil: Basophil, normoblast: Erythroblast, myeloblast: null, hairy_cell: null,"
        " promyelocyte: Promyelocyte, myelocyte: Myelocyte, metamyelocyte: Metamyelocyte,"
        " neutrophil_band: Band Neutrophil, promyelocyte_atypical: null, lymphocyte_large_granular: null,"
        " plasma_cell: null, smudge_cell: null, lymphocyte_neoplastic: null, lymphocyte_reactive: null}\n"
        "    sampling: {test_per_class: 3}\n")
    res = evaluate(EvalConfig(["heads"], ["tinybloom"], output=tmp_path / "run", include=[str(d)], progress=False,
                              bootstrap=10))
    assert [e["task"] for e in res["evaluations"]] == ["heads", "heads.mll"]
    t = res["tasks"]
    assert t["heads"]["sample_ids"]["train"] == t["heads.mll"]["sample_ids"]["train"]
    assert all(i.startswith(("neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil", "normoblast",
                             "promyelocyte", "myelocyte", "metamyelocyte")) for i in t["heads.mll"]["sample_ids"]["test"])
    assert res["evaluations"][1]["n"] == len(t["heads.mll"]["sample_ids"]["test"]) > 0


def test_vlm_hidden_states_two_layers_each_pooling(tmp_path):
    pytest.importorskip("transformers")
    from tiny_vlm import save_tiny_llava
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from cytoreg.models.hf_hidden import HFHiddenStates

    folder = save_tiny_llava(tmp_path / "llava", "What can you see on this image?")
    d = tmp_path / "specs"
    d.mkdir()
    (d / "hidden.yaml").write_text(f"spec: model/v1\nname: tiny-hidden\nadapter: hf_hidden\nparams: {{model: '{folder}', "
                                   "prompt: 'What can you see on this image?', layers: [1, 2], "
                                   "pooling: [mean, last, image_tokens]}\nexecution: {batch_size: 16, workers: 0}\n")
    (d / "bad.yaml").write_text(f"spec: model/v1\nname: bad-hidden\nadapter: hf_hidden\nparams: {{model: '{folder}', "
                                "layers: [5]}\n")
    (d / "probe.yaml").write_text(PROBE)
    cat = Catalog.load([d])
    ad = HFHiddenStates(cat.model("tiny-hidden"))
    ad.load()
    imgs = sorted(Path(__file__).parents[1].joinpath("src/cytoreg/demo_data/pbc").rglob("*.jpg"))[:3]
    got = ad.extract_batch(ad.collate([ad.preprocess(_open(p)) for p in imgs]))
    assert sorted(got) == sorted(f"layer{l}/{p}" for l in (1, 2) for p in ("mean", "last", "image_tokens"))
    assert all(v.shape == (3, 32) for v in got.values())
    # independently: one image at a time, no padding, straight from transformers
    proc = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What can you see on this image?"}]}]
    prompt = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    image_id = model.config.image_token_id
    for k, p in enumerate(imgs):
        inputs = proc(text=[prompt], images=[_open(p).convert("RGB")], return_tensors="pt")
        with torch.no_grad():
            hs = model(**inputs, output_hidden_states=True).hidden_states
        is_img = inputs["input_ids"][0] == image_id
        assert int(is_img.sum()) == 16
        for layer in (1, 2):
            h = hs[layer][0]
            np.testing.assert_allclose(got[f"layer{layer}/mean"][k], h.mean(0).numpy(), atol=1e-5)
            np.testing.assert_allclose(got[f"layer{layer}/last"][k], h[-1].numpy(), atol=1e-5)
            np.testing.assert_allclose(got[f"layer{layer}/image_tokens"][k], h[is_img].mean(0).numpy(), atol=1e-5)
    assert not np.allclose(got["layer1/mean"], got["layer2/mean"], atol=1e-4)
    with pytest.raises(ModelLoadError, match="layer 5 asked for, but .* has 2 layers"):
        bad = HFHiddenStates(cat.model("bad-hidden"))
        bad.extract_batch([_open(imgs[0]).convert("RGB")])
    res = evaluate(EvalConfig(["demo-probe"], ["tiny-hidden"], output=tmp_path / "run", include=[str(d)],
                              progress=False, bootstrap=10))
    assert [e["setting"] for e in res["evaluations"]] == [f"probe:layer{l}/{p}" for l in (1, 2)
                                                         for p in ("mean", "last", "image_tokens")]
    assert all(e["errors"] == 0 and e["probe"]["feature_dim"] == 32 for e in res["evaluations"])


def test_probe_benchmarks_load_their_published_layouts(tmp_path, monkeypatch):
    from probe_fixtures import CRC, ISIC, PANNUKE_CASES, build_probe_data

    from cytoreg.registry.builtins import TASK_KINDS

    build_probe_data(tmp_path)
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path))
    d = tmp_path / "specs"
    d.mkdir()
    for t in ("han-t2-pannuke", "han-t4-isic2020"):  # the fixtures are too small for 500 / 100 test images per class
        (d / f"{t}.yaml").write_text(f"spec: task/v1\nname: {t}-small\nextends: {t}\nsampling: {{test_per_class: 1}}\n")
    cat = Catalog.load([d])

    def views(name):
        kind = TASK_KINDS.get("probe")(cat.task(name))
        return {spec.name: k.prepare() for spec, k in kind.expand()}

    t1 = views("han-t1-crc")
    assert list(t1) == ["han-t1-crc.crc-val-he-7k"]  # tested only on the other patients' set
    p = t1["han-t1-crc.crc-val-he-7k"]
    assert p.labels == ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
                        "normal colon mucosa", "cancer-associated stroma", "colorectal adenocarcinoma epithelium"]
    assert len(p.split.train) == 9 * 3 and len(p.test) == 9 * 2
    assert all("TCGA" in s.id for s in p.test) and not any("TCGA" in s.id for s in p.split.train)
    assert {s.id.split("/")[0] for s in p.test} == set(CRC)

    t2 = views("han-t2-pannuke-small")["han-t2-pannuke-small"]
    expected = [lab for _, lab in PANNUKE_CASES if lab] * 3
    got = sorted(s.label for s in t2.test + t2.split.train)
    assert got == sorted(expected)
    assert len(t2.skipped) == 3 * sum(1 for _, lab in PANNUKE_CASES if lab is None)
    assert any("neither benign nor malignant" in s["reason"] for s in t2.skipped)
    img = _open_ref(t2.test[0].image)
    assert img.size == (256, 256) and t2.test[0].meta["tissue"] in {"breast", "colon", "adrenal gland",
                                                                    "bile duct", "skin", "lung"}

    t3 = views("han-t3-isic2018")["han-t3-isic2018.test"]
    assert len(t3.split.train) == 14 and len(t3.test) == 7
    assert sorted(s.label for s in t3.test) == sorted(t3.labels) and len(t3.labels) == len(ISIC)
    t4 = views("han-t4-isic2020-small")["han-t4-isic2020-small"]
    assert sorted(s.label for s in t4.test + t4.split.train) == ["benign"] * 6 + ["malignant"] * 2
    t5 = views("han-t5-dr")["han-t5-dr.aptos"]
    assert len(t5.split.train) == 10 and len(t5.test) == 10 and t5.test[0].image.path.suffix == ".png"
    assert {s.label for s in t5.test} == set(t5.labels)
    t6 = views("han-t6-glaucoma")["han-t6-glaucoma.odir"]
    assert sorted(s.label for s in t6.split.train) == ["no referable glaucoma"] * 8 + ["referable glaucoma"] * 4
    assert all(s.image.path.exists() for s in t6.split.train)  # found in the archive folders 0/ ... 5/
    assert sorted(s.label for s in t6.test) == ["no referable glaucoma"] * 4 + ["referable glaucoma"] * 2
    t8 = views("han-t8-knee")["han-t8-knee.oai-test"]
    assert len(t8.split.train) == 15 and len(t8.test) == 10 and t8.labels[0] == "KL 0 (none)"


def _open_ref(ref):
    from cytoreg.tasks.samples import open_image

    return open_image(ref.read_bytes(), str(ref))


def test_onehot_rows_must_have_exactly_one_class(tmp_path, monkeypatch):
    from probe_fixtures import build_probe_data

    from cytoreg.errors import DataError
    from cytoreg.registry.builtins import TASK_KINDS

    build_probe_data(tmp_path)
    gt = tmp_path / "isic2018/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv"
    lines = gt.read_text().splitlines()
    lines[3] = lines[3].replace("0.0", "1.0", 1)
    gt.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path))
    kind = TASK_KINDS.get("probe")(Catalog.load().task("han-t3-isic2018"))
    with pytest.raises(DataError, match=r"Training_GroundTruth.csv:4: 2 of the one-hot columns .* are set \(MEL, "):
        kind.expand()[0][1].prepare()


def test_layers_flag_sweeps_layer_wise_models_and_refuses_others(specs, tmp_path):
    from cytoreg.cli import main
    from cytoreg.errors import IncompatibleError

    d, _ = specs
    assert main(["eval", "--tasks", "demo-probe", "--models", "tinybloom", "--include", str(d), "--layers", "1",
                 "--output", str(tmp_path / "run"), "--no-progress", "--bootstrap", "10"]) == 0
    res = json.loads((tmp_path / "run/results.json").read_text())
    assert [e["setting"] for e in res["evaluations"]] == ["probe:cls", "probe:block1/cls", "probe:block1/mean"]
    with pytest.raises(IncompatibleError, match="--layers: model 'random'"):
        evaluate(EvalConfig(["demo"], ["random"], output=tmp_path / "x", progress=False, layers=[1]))


def test_padchest_findings_become_binary_views_with_a_mean_auc(specs, tmp_path, monkeypatch):
    from probe_fixtures import PADCHEST_ROWS, build_probe_data

    d, _ = specs
    build_probe_data(tmp_path / "data")
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path / "data"))
    (d / "pad.yaml").write_text("spec: task/v1\nname: small-padchest\nextends: han-t7-padchest\n"
                                "findings: [normal, pleural effusion, cardiomegaly]\n"
                                "sampling: {seed: 42, test_per_class: 2, train_per_class: 4}\nprobe: {seed: 0}\n")
    res = evaluate(EvalConfig(["small-padchest"], ["tinybloom"], output=tmp_path / "run", include=[str(d)],
                              progress=False, bootstrap=10))
    names = [e["task"] for e in res["evaluations"]]
    assert names == ["small-padchest.normal", "small-padchest.pleural-effusion", "small-padchest.cardiomegaly"]
    rows = [json.loads(l) for l in (tmp_path / "run/samples.jsonl").read_text().splitlines()]
    truth = {}
    n = 0
    for labels, count in PADCHEST_ROWS:
        for _ in range(count):
            truth[f"{216840111366964012 + n}_{n:04d}.png"] = labels
            n += 1
    for r in rows:
        finding = {"small-padchest.normal": "normal", "small-padchest.pleural-effusion": "pleural effusion",
                   "small-padchest.cardiomegaly": "cardiomegaly"}[r["task"]]
        assert r["label"] == ("present" if f"'{finding}'" in truth[r["id"]] else "absent")
    (group,) = res["groups"]["small-padchest"]
    aucs = [e["metrics"]["auc_macro"] for e in res["evaluations"]]
    assert group["auc_macro_mean"] == pytest.approx(sum(aucs) / 3)
    assert all(res["tasks"][t]["labels"] == ["absent", "present"] for t in names)



def test_mlp_head_trains_even_when_a_caller_left_grad_mode_off():
    """Some libraries switch autograd off globally; the head must train the same either way."""
    import torch

    from cytoreg.tasks.probe_heads import _mlp

    rng = np.random.RandomState(0)
    X, X_test = rng.normal(size=(40, 6)), rng.normal(size=(10, 6))
    y = ["a" if v > 0 else "b" for v in X[:, 0]]
    cfg = {"standardize": True, "mlp": {"hidden": 8, "epochs": 5, "patience": 0}}
    ref = _mlp(cfg, X, y, X_test, ["a", "b"], None, None, 1).proba
    with torch.no_grad():
        off = _mlp(cfg, X, y, X_test, ["a", "b"], None, None, 1).proba
    np.testing.assert_array_equal(ref, off)
