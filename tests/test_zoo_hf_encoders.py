"""The transformers-format encoders of the zoo (Phikon-v2, Midnight, DINOv3; Hibou's spec) on tiny
twins saved with ``save_pretrained``: loaded through the built-in spec as shipped (``extends`` + a
local ``params.model``), the card's pooling on the checkpoint's own processor, a probe through
``cytoreg eval``."""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from tiny_hf_encoders import save_hf_twin  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

DEMO = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc"
#: the cards' numbers: hub id, pooling, resize, crop, mean, std
CARDS = {
    "phikon-v2": ("owkin/phikon-v2", "cls", 224, 224, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "midnight": ("kaiko-ai/midnight", "cls+mean", 224, 224, [0.5] * 3, [0.5] * 3),
    "dinov3-b": ("facebook/dinov3-vitb16-pretrain-lvd1689m", "pooler", 224, None,
                 [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


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
    for name in ("hibou-b", "hibou-l"):  # HistAI's own model code: only because the spec says so
        s = cat.model(name)
        assert s.get("trust_remote_code") is True and "trust_remote_code" in s.get("notes")
        assert s.get("params")["pooling"] == "pooler"
    assert cat.model("hibou-l").get("gated") == "https://huggingface.co/histai/hibou-L"
    assert cat.model("dinov3-b").get("gated") == "https://huggingface.co/facebook/dinov3-vitb16-pretrain-lvd1689m"


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
