"""The pathology encoders of the model zoo (timm hub layout: UNI, UNI2-h, Virchow2, H-optimus-0/1,
Prov-GigaPath) on tiny random twins of their published architecture and checkpoint layout, loaded
through the built-in spec as shipped (``extends`` + ``local-dir:``): the model card's
preprocessing, the card's pooling, and a probe through ``cytoreg eval``."""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("timm")
torch = pytest.importorskip("torch")

from tiny_encoders import TWINS, save_twin, twin_spec  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
BIOPTIMUS = ([0.707223, 0.578729, 0.703617], [0.211883, 0.230117, 0.177517])
#: the model cards' numbers: (resize, square, crop, interpolation, mean/std, feature dim, card), each
#: checked against the publisher's code or a peer that loads it (docs/model-cards.md): UNI, UNI2-h,
#: Virchow2, H-optimus-0/1 as mahmoodlab/TRIDENT@a91fa84 trident/patch_encoder_models/load.py builds them;
#: Prov-GigaPath as prov-gigapath/prov-gigapath@09d8e87 README.md (Resize 256 bicubic, CenterCrop 224)
CARDS = {
    "uni": (224, False, 224, "bilinear", IMAGENET, 1024, "https://huggingface.co/MahmoodLab/UNI"),
    "uni2-h": (224, False, 224, "bilinear", IMAGENET, 1536, "https://huggingface.co/MahmoodLab/UNI2-h"),
    "virchow2": (224, False, 224, "bicubic", IMAGENET, 2560, "https://huggingface.co/paige-ai/Virchow2"),
    "h-optimus-0": (224, True, None, "bilinear", BIOPTIMUS, 1536, "https://huggingface.co/bioptimus/H-optimus-0"),
    "h-optimus-1": (224, True, None, "bilinear", BIOPTIMUS, 1536, "https://huggingface.co/bioptimus/H-optimus-1"),
    "prov-gigapath": (256, False, 224, "bicubic", IMAGENET, 1536,
                      "https://huggingface.co/prov-gigapath/prov-gigapath"),
}
DEMO = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc"
PROBE = ("spec: task/v1\nname: zoo-probe\nkind: probe\nextends: demo\n"
         "sampling: {seed: 42, test_per_class: 2, train_per_class: 3, val_per_class: 1}\n")


def card_transform(name):
    """The card's torchvision pipeline, written out independently of the adapter."""
    from torchvision import transforms as T

    resize, square, crop, interp, (mean, std), _, _ = CARDS[name]
    mode = T.InterpolationMode.BICUBIC if interp == "bicubic" else T.InterpolationMode.BILINEAR
    steps = [T.Resize((resize, resize) if square else resize, interpolation=mode)]
    steps += [T.CenterCrop(crop)] if crop else []
    return T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])


def card_features(name, model, x):
    """The card's embedding: model(x) (CLS), or Virchow2's CLS ⊕ mean of patch tokens [5:]."""
    with torch.no_grad():
        out = model(x)
    if name == "virchow2":
        return torch.cat([out[:, 0], out[:, 5:].mean(1)], dim=-1).numpy()
    return out.numpy()


def test_every_timm_zoo_spec_has_a_twin_and_the_cards_numbers():
    cat = Catalog.load([])
    zoo = {e.name for e in cat.models if e.target.get("adapter") == "timm"
           and str(e.target.get("params", {}).get("pretrained", "")).startswith("hf-hub:")}
    assert zoo == set(TWINS) == set(CARDS)
    for name, (resize, square, crop, interp, (mean, std), dim, card) in CARDS.items():
        spec = cat.model(name)
        pre = spec.get("params")["preprocess"]
        assert (pre["resize"], bool(pre.get("square")), pre.get("crop"), pre["interpolation"]) == \
            (resize, square, crop, interp), name
        assert (pre["mean"], pre["std"]) == (mean, std), name
        assert spec.get("homepage") == card and spec.get("gated") == card
        assert card in spec.get("notes") and spec.get("license") and spec.get("parameters") and spec.get("release")
        assert spec.get("params")["pretrained"] == "hf-hub:" + card.split("huggingface.co/")[1]


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_features_equal_the_cards_recipe(name, tmp_path):
    from cytoreg.models.timm_features import TimmFeatures
    from cytoreg.tasks.samples import open_image

    model = save_twin(tmp_path / "w", name)
    (tmp_path / "s.yaml").write_text(twin_spec(name, tmp_path / "w"))
    ad = TimmFeatures(Catalog.load([tmp_path / "s.yaml"]).model(f"{name}-twin"))
    ad.load()
    imgs = [open_image(p.read_bytes(), str(p)) for p in sorted(DEMO.rglob("*.jpg"))[:3]]
    batch = torch.stack([ad.preprocess(im) for im in imgs])
    x = torch.stack([card_transform(name)(im.convert("RGB")) for im in imgs])
    assert batch.shape == (3, 3, 224, 224)
    assert torch.equal(batch, x)
    (key,) = ad.feature_keys()
    got = ad.extract_batch(batch)[key]
    ref = card_features(name, model, x)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert got.shape == (3, 64 if name == "virchow2" else 32)  # tiny width 32; Virchow2 concatenates two
    if name == "virchow2":  # the registers are excluded: including them changes the mean
        with torch.no_grad():
            tokens = model(x)
        assert not np.allclose(got[:, 32:], tokens[:, 1:].mean(1).numpy(), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["uni2-h", "virchow2", "h-optimus-0"])
def test_twin_probe_through_cytoreg_eval(name, tmp_path):
    from cytoreg.cli import main

    save_twin(tmp_path / "w", name)
    d = tmp_path / "specs"
    d.mkdir()
    (d / "m.yaml").write_text(twin_spec(name, tmp_path / "w"))
    (d / "t.yaml").write_text(PROBE)
    rc = main(["eval", "--tasks", "zoo-probe", "--models", f"{name}-twin", "-o", str(tmp_path / "run"),
               "--include", str(d), "--bootstrap", "10", "--no-progress"])
    assert rc == 0
    res = json.loads((tmp_path / "run/results.json").read_text())
    (ev,) = res["evaluations"]
    assert ev["model"] == f"{name}-twin" and ev.get("status", "complete") == "complete"
    assert ev["probe"]["n_train"] == 11 * 3 and 0 <= ev["metrics"]["accuracy"] <= 1


def test_gated_repo_missing_says_where_to_accept_the_licence(monkeypatch, tmp_path):
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.timm_features import TimmFeatures

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match=r"model 'virchow2'.*accept the licence at https://huggingface.co/"
                                             r"paige-ai/Virchow2"):
        TimmFeatures(Catalog.load([]).model("virchow2")).load()


def _stated_count(text: str) -> tuple[float, float]:
    """'303M' / '1.1B' -> (count, tolerance): half a unit of the last digit written, at least 0.5 %."""
    import re

    num, unit = re.fullmatch(r"([0-9.]+)([MB])", text.strip()).groups()
    scale = 1e6 if unit == "M" else 1e9
    decimals = len(num.split(".")[1]) if "." in num else 0
    value = float(num) * scale
    return value, max(0.5 * 10 ** -decimals * scale, 0.005 * value)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_spec_parameters_and_feature_dim_follow_from_the_published_architecture(name):
    """Built at full size on the meta device from the spec's kwargs + the hub config's model_args
    (the published architecture), the model has the parameter count the spec states and the card's
    feature width (Virchow2: CLS ⊕ patch mean, twice the width)."""
    import timm

    from tiny_encoders import spec_kwargs

    spec = Catalog.load([]).model(name)
    kwargs = {**TWINS[name].model_args, **spec_kwargs(spec), "num_classes": 0}
    with torch.device("meta"):
        model = timm.create_model(TWINS[name].arch, pretrained=False, **kwargs)
    count = sum(p.numel() for p in model.parameters())
    stated, tol = _stated_count(spec.get("parameters"))
    assert abs(count - stated) <= tol, (name, count, spec.get("parameters"))
    width = model.num_features * (2 if spec.get("params").get("pooling") == "cls+mean" else 1)
    assert width == CARDS[name][5]
