"""The transformers-format encoders of the zoo (Phikon-v2, Midnight, DINOv3-B/L, Hibou-B/L) on tiny
twins saved in the published layout: loaded through the built-in spec as shipped (``extends`` + a
local ``params.model``), the card's pooling on the checkpoint's own processor, a probe through
``cytoreg eval``. Hibou's checkpoint ships its own model code (``auto_map``): refused without the
spec's ``trust_remote_code``, and with it the features equal transformers' built-in DINOv2 with
registers reading the same weights."""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from tiny_hf_encoders import HIBOU, HIBOU_AUTO_MAP, save_hf_twin, save_hibou_twin  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

DEMO = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc"
#: the cards' numbers: hub id, pooling, resize, crop, mean, std
CARDS = {
    "phikon-v2": ("owkin/phikon-v2", "cls", 224, 224, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "midnight": ("kaiko-ai/midnight", "cls+mean", 224, 224, [0.5] * 3, [0.5] * 3),
    "dinov3-b": ("facebook/dinov3-vitb16-pretrain-lvd1689m", "pooler", 224, None,
                 [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "dinov3-l": ("facebook/dinov3-vitl16-pretrain-lvd1689m", "pooler", 224, None,
                 [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}
#: Hibou: hub id, gated page, mean / std (HistAI/hibou example.ipynb); pooling pooler_output
HIBOU_CARDS = {"hibou-b": ("histai/hibou-b", None), "hibou-l": ("histai/hibou-L", "https://huggingface.co/histai/hibou-L")}


def _spec(tmp_path, name, folder):
    f = tmp_path / f"{name}-twin.yaml"
    f.write_text(f"spec: model/v1\nname: {name}-twin\nextends: {name}\nparams: {{model: '{folder}'}}\n"
                 "execution: {batch_size: 8, workers: 0}\n")
    return f


def test_specs_state_the_cards_numbers():
    cat = Catalog.load([])
    for name, (hub, pooling, resize, crop, mean, std) in CARDS.items():
        s = cat.model(name)
        p = s.get("params")
        assert (p["model"], p["pooling"]) == (hub, pooling)
        assert (p["preprocess"]["resize"], p["preprocess"]["crop"]) == (resize, crop)
        assert (p["preprocess"]["mean"], p["preprocess"]["std"]) == (mean, std)
        assert hub in s.get("homepage") and s.get("license") and s.get("parameters")
    for name, (hub, gated) in HIBOU_CARDS.items():  # HistAI's own model code: only because the spec says so
        s = cat.model(name)
        p = s.get("params")
        assert s.get("trust_remote_code") is True and "trust_remote_code" in s.get("notes")
        assert (p["model"], p["pooling"], s.get("gated")) == (hub, "pooler", gated)
        assert (p["preprocess"]["mean"], p["preprocess"]["std"]) == (HIBOU[0], HIBOU[1])
    for name in ("dinov3-b", "dinov3-l"):
        assert cat.model(name).get("gated") == f"https://huggingface.co/{CARDS[name][0]}"


@pytest.mark.parametrize("name", sorted(CARDS))
def test_twin_features_follow_the_card(name, tmp_path, capsys):
    from cytoreg.models.hf_features import HFFeatures
    from cytoreg.tasks.samples import open_image

    model, proc = save_hf_twin(tmp_path / "w", name)
    ad = HFFeatures(Catalog.load([_spec(tmp_path, name, tmp_path / "w")]).model(f"{name}-twin"))
    ad.load()
    assert "differs from the model card" not in capsys.readouterr().err
    imgs = [open_image(p.read_bytes(), str(p)) for p in sorted(DEMO.rglob("*.jpg"))[:3]]
    batch = torch.stack([ad.preprocess(im) for im in imgs])
    ref_in = proc(images=imgs, return_tensors="pt")["pixel_values"]
    assert batch.shape == (3, 3, 224, 224) and torch.equal(batch, ref_in)
    got = ad.extract_batch(batch)
    assert list(got) == [CARDS[name][1]]
    with torch.no_grad():
        out = model(pixel_values=ref_in)
    ref = {"cls": out.last_hidden_state[:, 0], "pooler": out.pooler_output,
           "cls+mean": torch.cat([out.last_hidden_state[:, 0], out.last_hidden_state[:, 1:].mean(1)], -1)}[CARDS[name][1]]
    np.testing.assert_allclose(got[CARDS[name][1]], ref.numpy(), atol=1e-5)


def test_processor_that_differs_from_the_card_is_named(tmp_path, capsys):
    from transformers import BitImageProcessor

    from cytoreg.models.hf_features import HFFeatures

    save_hf_twin(tmp_path / "w", "phikon-v2")
    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                      image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(tmp_path / "w")
    HFFeatures(Catalog.load([_spec(tmp_path, "phikon-v2", tmp_path / "w")]).model("phikon-v2-twin")).load()
    err = capsys.readouterr().err
    assert "model 'phikon-v2-twin'" in err and "resize: spec 224, checkpoint 256" in err
    assert "mean: spec [0.485, 0.456, 0.406], checkpoint [0.5, 0.5, 0.5]" in err


def test_gated_encoder_missing_says_where_to_accept(monkeypatch, tmp_path):
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.hf_features import HFFeatures

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match=r"model 'dinov3-b'.*accept the licence at "
                                             r"https://huggingface.co/facebook/dinov3-vitb16-pretrain-lvd1689m"):
        HFFeatures(Catalog.load([]).model("dinov3-b")).load()


@pytest.mark.slow
def test_phikon_twin_probe_through_cytoreg_eval(tmp_path):
    from cytoreg.cli import main

    save_hf_twin(tmp_path / "w", "phikon-v2")
    d = tmp_path / "specs"
    d.mkdir()
    _spec(d, "phikon-v2", tmp_path / "w")
    (d / "t.yaml").write_text("spec: task/v1\nname: zoo-probe\nkind: probe\nextends: demo\n"
                              "sampling: {seed: 42, test_per_class: 2, train_per_class: 3, val_per_class: 1}\n")
    rc = main(["eval", "--tasks", "zoo-probe", "--models", "phikon-v2-twin", "-o", str(tmp_path / "run"),
               "--include", str(d), "--bootstrap", "10", "--no-progress"])
    assert rc == 0
    (ev,) = json.loads((tmp_path / "run/results.json").read_text())["evaluations"]
    assert ev["probe"]["n_train"] == 33 and "accuracy" in ev["metrics"]


def _hibou_spec(tmp_path, name, folder, trust=None):
    extra = "" if trust is None else f"trust_remote_code: {str(trust).lower()}\n"
    f = tmp_path / f"{name}-twin.yaml"
    f.write_text(f"spec: model/v1\nname: {name}-twin\nextends: {name}\n{extra}params: {{model: '{folder}'}}\n"
                 "execution: {batch_size: 8, workers: 0}\n")
    return f


def _demo_images(n=3):
    from cytoreg.tasks.samples import open_image

    return [open_image(p.read_bytes(), str(p)) for p in sorted(DEMO.rglob("*.jpg"))[:n]]


@pytest.mark.parametrize("name", sorted(HIBOU_CARDS))
def test_hibou_without_trust_remote_code_is_refused(name, tmp_path):
    from transformers import AutoModel

    from cytoreg.errors import ModelLoadError
    from cytoreg.models.hf_features import HFFeatures

    ref, proc = save_hibou_twin(tmp_path / f"{name}-w", seed=1)
    spec = _hibou_spec(tmp_path, name, tmp_path / f"{name}-w", trust=False)
    ad = HFFeatures(Catalog.load([spec]).model(f"{name}-twin"))
    with pytest.raises(ModelLoadError) as err:
        ad.load()
    msg = str(err.value)
    assert f"model '{name}-twin'" in msg and f"set 'trust_remote_code: true' in {spec}" in msg
    assert "AutoModel -> modeling_dinov2.Dinov2ModelWithRegisters" in msg
    assert "configuration_dinov2.py, modeling_dinov2.py" in msg
    # why the refusal: transformers alone builds its own Dinov2Model from model_type 'dinov2' without a
    # word and drops the register tokens, so its "pooler_output" is not Hibou's
    plain = AutoModel.from_pretrained(str(tmp_path / f"{name}-w")).eval()
    assert type(plain).__name__ == "Dinov2Model"
    px = proc(images=_demo_images(2), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        assert not torch.allclose(plain(pixel_values=px).pooler_output, ref(pixel_values=px).pooler_output, atol=1e-2)


@pytest.mark.parametrize("name", sorted(HIBOU_CARDS))
def test_hibou_twin_features_are_the_cards_pooler_output(name, tmp_path, capsys):
    """HistAI's layout (auto_map + modeling / configuration files + legacy DINOv2 key names) read
    through the spec; the reference is transformers' built-in Dinov2WithRegistersModel holding the
    same weights, so the remote code and the checkpoint agree key for key."""
    import json

    from cytoreg.models.hf_features import HFFeatures

    folder = tmp_path / f"{name}-w"
    ref, proc = save_hibou_twin(folder, seed=2)
    cfg = json.loads((folder / "config.json").read_text())
    assert (cfg["model_type"], cfg["auto_map"], cfg["num_register_tokens"], cfg["patch_size"]) == \
        ("dinov2", HIBOU_AUTO_MAP, 4, 14)
    assert cfg["use_swiglu_ffn"] is True
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    assert (pre["image_mean"], pre["image_std"]) == (HIBOU[0], HIBOU[1])
    ad = HFFeatures(Catalog.load([_hibou_spec(tmp_path, name, folder)]).model(f"{name}-twin"))
    ad.load()
    assert type(ad._model).__name__ == "Dinov2ModelWithRegisters"
    assert "differs from the model card" not in capsys.readouterr().err
    imgs = _demo_images(3)
    batch = torch.stack([ad.preprocess(im) for im in imgs])
    ref_in = proc(images=imgs, return_tensors="pt")["pixel_values"]
    assert batch.shape == (3, 3, 224, 224) and torch.equal(batch, ref_in)
    got = ad.extract_batch(batch)
    assert list(got) == ["pooler"]
    with torch.no_grad():
        out = ref(pixel_values=ref_in)
    # the card's feature: CLS after the final LayerNorm, 1 CLS + 4 registers + 16 x 16 patches
    assert out.last_hidden_state.shape[1] == 1 + 4 + 256
    np.testing.assert_allclose(got["pooler"], out.pooler_output.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["pooler"], out.last_hidden_state[:, 0].numpy(), atol=1e-6)


def _probe_through_eval(tmp_path, name, spec_writer):
    from cytoreg.cli import main

    d = tmp_path / "specs"
    d.mkdir()
    spec_writer(d)
    (d / "t.yaml").write_text("spec: task/v1\nname: zoo-probe\nkind: probe\nextends: demo\n"
                              "sampling: {seed: 42, test_per_class: 2, train_per_class: 3, val_per_class: 1}\n")
    rc = main(["eval", "--tasks", "zoo-probe", "--models", f"{name}-twin", "-o", str(tmp_path / "run"),
               "--include", str(d), "--bootstrap", "10", "--no-progress"])
    assert rc == 0
    (ev,) = json.loads((tmp_path / "run/results.json").read_text())["evaluations"]
    assert ev["model"] == f"{name}-twin" and ev["probe"]["n_train"] == 33 and "accuracy" in ev["metrics"]
    return ev


@pytest.mark.parametrize("name", ["hibou-b", "hibou-l"])
def test_hibou_twin_probe_through_cytoreg_eval(name, tmp_path):
    save_hibou_twin(tmp_path / f"{name}-w")
    _probe_through_eval(tmp_path, name, lambda d: _hibou_spec(d, name, tmp_path / f"{name}-w"))


def test_dinov3_l_twin_probe_through_cytoreg_eval(tmp_path):
    save_hf_twin(tmp_path / "w", "dinov3-l")
    _probe_through_eval(tmp_path, "dinov3-l", lambda d: _spec(d, "dinov3-l", tmp_path / "w"))
