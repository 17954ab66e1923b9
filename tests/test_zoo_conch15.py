"""CONCH v1.5 through the built-in spec (timm adapter, one state-dict file of a gated hub repo) on a
tiny twin of ``pytorch_model_vision.bin``: the card's 448-px preprocessing, the trunk's DINO-style
position-embedding interpolation and the attentional pooler equal an independent computation,
and a probe runs through ``cytoreg eval``. The weights are found as ``hf-hub:<repo>/<file>`` in the
Hugging Face cache; what is missing or does not fit is an error that says what to do."""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("timm")
torch = pytest.importorskip("torch")

from tiny_conch15 import FILE, POOL_HEADS, REPO, put_in_hf_cache, save_tiny_conch15, twin_spec  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
DEMO = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc"
PROBE = ("spec: task/v1\nname: zoo-probe\nkind: probe\nextends: demo\n"
         "sampling: {seed: 42, test_per_class: 2, train_per_class: 3, val_per_class: 1}\n")
CARD = "https://huggingface.co/MahmoodLab/conchv1_5"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    c = tmp_path / "hub"
    c.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(c))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return c


def card_transform():
    """TRIDENT's / TITAN's eval transform, written out independently of the adapter."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(448, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(448), T.ToTensor(),
                      T.Normalize(*IMAGENET)])


def reference_embedding(trunk, pool, x):
    """The published forward, by hand: patch embedding, class token, the 14 x 14 position
    embedding interpolated DINO's way to the input grid, the blocks, the final norm, then the
    attentional pooler (one query, 8 heads) and ln_contrast."""
    f = torch.nn.functional
    with torch.no_grad():
        b, _, h, w = x.shape
        tokens = trunk.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([trunk.cls_token.expand(b, -1, -1), tokens], dim=1)
        pos = trunk.pos_embed
        n = pos.shape[1] - 1
        side = int(n ** 0.5)
        gh, gw = h // 16 + 0.1, w // 16 + 0.1
        grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = f.interpolate(grid, scale_factor=(gh / side, gw / side), mode="bicubic")
        tokens = tokens + torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])], dim=1)
        for blk in trunk.blocks:
            tokens = blk(tokens)
        tokens = trunk.norm(tokens)
        q = f.layer_norm(pool["query"], pool["query"].shape[-1:], pool["ln_q.weight"], pool["ln_q.bias"])
        q = q @ pool["to_q.weight"].T
        kv = f.layer_norm(tokens, tokens.shape[-1:], pool["ln_k.weight"], pool["ln_k.bias"]) @ pool["to_kv.weight"].T
        k, v = kv.chunk(2, dim=-1)
        hd = q.shape[-1] // POOL_HEADS
        qh = q.reshape(1, POOL_HEADS, hd).transpose(0, 1)  # heads, 1, hd
        kh = k.reshape(b, -1, POOL_HEADS, hd).permute(0, 2, 1, 3)  # b, heads, L, hd
        vh = v.reshape(b, -1, POOL_HEADS, hd).permute(0, 2, 1, 3)
        att = torch.softmax(torch.einsum("hqd,bhld->bhql", qh, kh) * hd ** -0.5, dim=-1)
        out = torch.einsum("bhql,bhld->bqhd", att, vh).reshape(b, 1, -1)[:, 0] @ pool["to_out.weight"].T
        return f.layer_norm(out, out.shape[-1:], pool["ln_contrast.weight"], pool["ln_contrast.bias"]).numpy()


def test_conch15_spec_states_the_published_build():
    s = Catalog.load([]).model("conch-v1.5")
    p = s.get("params")
    assert (s.get("adapter"), p["arch"], p["img_size"], p["model_kwargs"]) == \
        ("timm", "vit_large_patch16_224", 448, {"init_values": 1.0})
    assert p["checkpoint"] == f"hf-hub:{REPO}/{FILE}" and p["checkpoint_format"] == "state_dict"
    assert (p["checkpoint_prefix"], p["pooling"], p["attn_pool"], p["pos_embed_resize"]) == \
        ("trunk.", "attn_pool", {"heads": 8}, {"mode": "dino", "base_grid": 14})
    assert p["preprocess"] == {"resize": 448, "crop": 448, "interpolation": "bilinear",
                               "mean": IMAGENET[0], "std": IMAGENET[1]}
    assert s.get("gated") == CARD and s.get("homepage") == CARD and s.get("license").startswith("CC-BY-NC-ND-4.0")
    assert "zero-shot" not in (s.get("tags") or []) and "probe model" in s.get("notes")
    for source in ("trident/patch_encoder_models/load.py", "conch_v1_5_pytorch_model.bin", "28.1 / 14"):
        assert source in s.get("notes")


def test_twin_features_equal_the_published_forward(cache, tmp_path):
    from timm.layers import resample_abs_pos_embed

    from cytoreg.models.timm_features import TimmFeatures
    from cytoreg.tasks.samples import open_image

    trunk, pool = save_tiny_conch15(tmp_path / "w")
    put_in_hf_cache(cache, tmp_path / "w")
    (tmp_path / "s.yaml").write_text(twin_spec())
    ad = TimmFeatures(Catalog.load([tmp_path / "s.yaml"]).model("conch-v1.5-twin"))
    assert ad.check() == []
    ad.load()
    imgs = [open_image(p.read_bytes(), str(p)) for p in sorted(DEMO.rglob("*.jpg"))[:3]]
    batch = torch.stack([ad.preprocess(im) for im in imgs])
    x = torch.stack([card_transform()(im.convert("RGB")) for im in imgs])
    assert batch.shape == (3, 3, 448, 448) and torch.equal(batch, x)
    assert ad.feature_keys() == ["attn_pool"]
    got = ad.extract_batch(batch)["attn_pool"]
    assert got.shape == (3, 16)
    np.testing.assert_allclose(got, reference_embedding(trunk, pool, x), atol=1e-5)
    # timm's own resample (size-based, antialiased) is not what the published trunk computes
    timm_pos = resample_abs_pos_embed(trunk.pos_embed.detach(), new_size=(28, 28), num_prefix_tokens=1)
    assert not torch.allclose(ad._model.pos_embed.detach(), timm_pos, atol=1e-4)


@pytest.mark.slow
def test_twin_probe_through_cytoreg_eval(cache, tmp_path):
    from cytoreg.cli import main

    save_tiny_conch15(tmp_path / "w")
    put_in_hf_cache(cache, tmp_path / "w")
    d = tmp_path / "specs"
    d.mkdir()
    (d / "m.yaml").write_text(twin_spec())
    (d / "t.yaml").write_text(PROBE)
    rc = main(["eval", "--tasks", "zoo-probe", "--models", "conch-v1.5-twin", "-o", str(tmp_path / "run"),
               "--include", str(d), "--bootstrap", "10", "--no-progress"])
    assert rc == 0
    (ev,) = json.loads((tmp_path / "run/results.json").read_text())["evaluations"]
    assert ev["model"] == "conch-v1.5-twin" and ev.get("status", "complete") == "complete"
    assert ev["probe"]["n_train"] == 11 * 3 and 0 <= ev["metrics"]["accuracy"] <= 1


def test_missing_weights_say_where_to_accept_the_licence(cache, capsys):
    from cytoreg.cli import main
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.timm_features import TimmFeatures

    ad = TimmFeatures(Catalog.load([]).model("conch-v1.5"))
    (msg,) = ad.check()  # the shared answer of models/check.py, as the preflight gives it
    assert f"weights missing: {FILE} of {REPO} (params.checkpoint) is not in the Hugging Face cache {cache}" in msg
    assert f"accept the licence at {CARD}" in msg
    with pytest.raises(ModelLoadError, match=r"model 'conch-v1.5': pytorch_model_vision.bin of MahmoodLab/conchv1_5 "
                                             r"is not in the Hugging Face cache.*accept the licence at"):
        ad.load()
    assert main(["models", "check", "conch-v1.5"]) == 1
    out = capsys.readouterr().out
    assert f"get it   accept the licence at {CARD}, then hf auth login and hf download {REPO} {FILE}" in out


def test_models_check_finds_the_file_in_the_cache(cache, tmp_path, capsys):
    from cytoreg.cli import main

    save_tiny_conch15(tmp_path / "w")
    snap_file = put_in_hf_cache(cache, tmp_path / "w")
    (tmp_path / "s.yaml").write_text(twin_spec())  # the built-in spec's hub file, the twin's trunk size
    assert main(["models", "check", "conch-v1.5-twin", "--include", str(tmp_path / "s.yaml")]) == 0
    out = capsys.readouterr().out
    assert "loads    timm architecture vit_large_patch16_224" in out and "status   ready" in out
    assert f"keys     {FILE} fits vit_large_patch16_224" in out
    # the twin's file is no ViT-L/16 state dict: the shipped spec says so before any run
    assert main(["models", "check", "conch-v1.5"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    import timm

    with torch.device("meta"):  # the published build, its keys counted independently
        full = set(timm.create_model("vit_large_patch16_224", init_values=1.0, num_classes=0).state_dict())
    twin = {k[len("trunk."):] for k in torch.load(snap_file, weights_only=True) if k.startswith("trunk.")}
    assert len(full - twin) == 22 * 14  # 22 blocks more, 14 tensors each
    assert (f"keys {snap_file} is present but not a vit_large_patch16_224 state dict: {len(full - twin)} missing (e.g. "
            "blocks.10.attn.proj.bias, blocks.10.attn.proj.weight, blocks.10.attn.qkv.bias), 33 of the wrong shape "
            "(e.g. cls_token (1, 1, 32) vs (1, 1, 1024)") in out
    # a file without the trunk.* keys (another model's state dict): missing and unexpected, named
    sd = torch.load(snap_file, weights_only=True)
    torch.save({k.replace("trunk.", "visual.", 1): v for k, v in sd.items()}, snap_file)
    assert main(["models", "check", "conch-v1.5-twin", "--include", str(tmp_path / "s.yaml")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    n = sum(k.startswith("trunk.") for k in sd)
    assert (f"is present but not a vit_large_patch16_224 state dict: {n} missing (e.g. blocks.0.attn.proj.bias, "
            f"blocks.0.attn.proj.weight, blocks.0.attn.qkv.bias), {n} unexpected (e.g. visual.blocks.0.attn.proj.bias, "
            "visual.blocks.0.attn.proj.weight, visual.blocks.0.attn.qkv.bias)") in out
    assert "status NOT READY" in out


@pytest.mark.parametrize("broken, message", [
    ("no_prefix", r"no key of .* starts with params.checkpoint_prefix 'trunk.'"),
    ("stray_key", r"keys neither in the trunk nor in the pooler \(\['proj_contrast'\]\)"),
    ("pooler_shape", r"do not make an attentional pooler"),
])
def test_checkpoints_that_do_not_fit_are_refused(cache, tmp_path, broken, message):
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.timm_features import TimmFeatures

    save_tiny_conch15(tmp_path / "w")
    sd = torch.load(tmp_path / "w" / FILE, weights_only=True)
    if broken == "no_prefix":
        sd = {k.replace("trunk.", "visual.", 1): v for k, v in sd.items()}
    elif broken == "stray_key":
        sd["proj_contrast"] = torch.zeros(16, 8)
    else:
        sd["attn_pool_contrast.to_kv.weight"] = torch.zeros(32, 7)
    torch.save(sd, tmp_path / "w" / FILE)
    (tmp_path / "s.yaml").write_text(twin_spec(str(tmp_path / "w" / FILE)))
    with pytest.raises(ModelLoadError, match=message):
        TimmFeatures(Catalog.load([tmp_path / "s.yaml"]).model("conch-v1.5-twin")).load()


def test_spec_parameters_and_width_follow_from_the_published_build():
    """Built at full size on the meta device (trunk from the spec's kwargs, the pooler at the
    published widths 1024 → 768), the model has the spec's parameter count and a 768-d embedding."""
    import re

    import timm

    s = Catalog.load([]).model("conch-v1.5")
    p = s.get("params")
    with torch.device("meta"):
        trunk = timm.create_model(p["arch"], pretrained=False, img_size=224, num_classes=0, **p["model_kwargs"])
    c, d = trunk.num_features, 768
    pooler = d + 2 * c + 2 * d + d * d + 2 * d * c + d * d + 2 * d  # query, ln_k, ln_q, to_q, to_kv, to_out, ln
    count = sum(t.numel() for t in trunk.parameters()) + pooler
    stated = float(re.match(r"([\d.]+)M", s.get("parameters")).group(1)) * 1e6
    assert abs(count - stated) < 0.5e6, count
    assert c == 1024 and p["attn_pool"]["heads"] == 8 and d % 8 == 0
    assert "1.22 GB (fp32)" in s.get("memory") and abs(count * 4 / 1e9 - 1.22) < 0.01


def test_the_cache_identity_is_the_same_before_and_after_the_download(cache, tmp_path):
    from cytoreg.models.timm_features import TimmFeatures

    spec = Catalog.load([]).model("conch-v1.5")
    before = TimmFeatures(spec).fingerprint()
    save_tiny_conch15(tmp_path / "w")
    put_in_hf_cache(cache, tmp_path / "w")
    assert TimmFeatures(spec).fingerprint() == before


def test_checkpoint_options_without_a_checkpoint_are_refused(tmp_path):
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.timm_features import TimmFeatures

    (tmp_path / "s.yaml").write_text("spec: model/v1\nname: plain\nadapter: timm\n"
                                     "params: {arch: vit_small_patch16_224, checkpoint_prefix: trunk.}\n")
    with pytest.raises(ModelLoadError, match=r"params.checkpoint_prefix applies to a params.checkpoint file"):
        TimmFeatures(Catalog.load([tmp_path / "s.yaml"]).model("plain")).load()
