"""PathGen-CLIP / PathGen-CLIP-L through the built-in specs: open_clip config + checkpoint file.
The real architecture (ViT-B-16, QuickGELU as the repository's zero-shot scripts load it) with random
weights in the training-checkpoint layout runs end to end through ``cytoreg eval``; its zero-shot
probabilities equal a plain open_clip computation made as those scripts make it. Tiny configs check
the layouts (plain / training checkpoint) and the refusals (a checkpoint of another resolution,
pickled objects beyond weights)."""
import argparse
import json

import numpy as np
import pytest

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from tiny_pathgen_clip import register_tiny_configs, save_pathgen_checkpoint  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

OPENAI = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])


def _spec(tmp_path, name, model, ckpt):
    f = tmp_path / f"{name}-twin.yaml"
    f.write_text(f"spec: model/v1\nname: {name}-twin\nextends: {name}\n"
                 f"params: {{model: {model}, pretrained: '{ckpt}'}}\nexecution: {{batch_size: 8, workers: 0}}\n")
    return f


def test_specs_state_the_readme(monkeypatch):
    monkeypatch.delenv("PATHGEN_CLIP_CHECKPOINT", raising=False)
    monkeypatch.delenv("PATHGEN_CLIP_L_CHECKPOINT", raising=False)
    cat = Catalog.load([])
    b, large = cat.model("pathgen-clip"), cat.model("pathgen-clip-l")
    assert (b.get("adapter"), large.get("adapter")) == ("open_clip", "open_clip")
    assert b.get("params")["model"] == "ViT-B-16-quickgelu" and b.get("params")["pretrained"] == "pathgenclip.pt"
    assert "https://pub-7a38cc906afa44a4a01533c288d0b1af.r2.dev/pathgenclip.pt" in b.get("params")["download_hint"]
    assert "force_quick_gelu=True" in b.get("notes")
    assert large.get("params")["model"] == "ViT-L-14-336-quickgelu"
    assert large.get("params")["pretrained"] == "pathgen-clip-l.pt"
    assert large.get("homepage") == "https://huggingface.co/jamessyx/PathGen-CLIP-L"
    # the configs are the README's ViT-B-16 (and ViT-L-14) with QuickGELU: same shapes, same tokenizer
    for quick, base in (("ViT-B-16-quickgelu", "ViT-B-16"), ("ViT-L-14-336-quickgelu", "ViT-L-14-336")):
        q, g = open_clip.get_model_config(quick), open_clip.get_model_config(base)
        assert q.pop("quick_gelu") is True and q == g


def test_pathgen_missing_checkpoint_names_the_readme_link(monkeypatch, capsys):
    from cytoreg.cli import main

    monkeypatch.setenv("PATHGEN_CLIP_CHECKPOINT", "/nonexistent/pathgenclip.pt")
    assert main(["models", "check", "pathgen-clip"]) == 1
    out = capsys.readouterr().out
    assert "weights  missing: " in out and " does not exist" in out and "NOT READY" in out  # (env values masked)
    assert "https://pub-7a38cc906afa44a4a01533c288d0b1af.r2.dev/pathgenclip.pt" in out


def test_training_and_plain_checkpoints_load_the_same_weights(tmp_path):
    from cytoreg.models.open_clip_adapter import OpenCLIP
    from cytoreg.tasks.samples import open_image
    from pathlib import Path

    small, _ = register_tiny_configs(tmp_path / "cfg")
    ref = save_pathgen_checkpoint(tmp_path / "epoch_10.pt", small, layout="training", seed=3)
    save_pathgen_checkpoint(tmp_path / "plain.pt", small, layout="plain", seed=3)
    demo = sorted((Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc").rglob("*.jpg"))[:2]
    imgs = [open_image(p.read_bytes(), str(p)) for p in demo]
    got = []
    for f in ("epoch_10.pt", "plain.pt"):
        ad = OpenCLIP(Catalog.load([_spec(tmp_path, "pathgen-clip", small, tmp_path / f)]).model("pathgen-clip-twin"))
        batch = torch.stack([ad.preprocess(im) for im in imgs])
        got.append((ad.encode_batch(batch), ad.encode_texts(["an H&E image of a neutrophil"]), ad.logit_scale()))
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])
    with torch.no_grad():
        want = torch.nn.functional.normalize(ref.encode_image(batch), dim=-1).numpy()
    np.testing.assert_allclose(got[0][0], want, atol=1e-6)
    assert got[0][2] == pytest.approx(float(ref.logit_scale.exp().detach()))


def test_checkpoint_of_another_resolution_is_refused(tmp_path):
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.open_clip_adapter import OpenCLIP

    small, large = register_tiny_configs(tmp_path / "cfg")
    save_pathgen_checkpoint(tmp_path / "pathgen-clip-l.pt", small, layout="training")
    spec = _spec(tmp_path, "pathgen-clip-l", large, tmp_path / "pathgen-clip-l.pt")
    with pytest.raises(ModelLoadError) as err:
        OpenCLIP(Catalog.load([spec]).model("pathgen-clip-l-twin")).load()
    msg = str(err.value)
    assert "holds 197 image positions (14 x 14 patches + CLS: 224 px at patch 16)" in msg
    assert "'PGTwin-336' expects 442 (336 px); open_clip would resample them silently" in msg
    assert f"Set params.model in {spec}" in msg


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.open_clip_adapter import OpenCLIP

    small, _ = register_tiny_configs(tmp_path / "cfg")
    model = open_clip.create_model(small, pretrained=None)
    torch.save({"state_dict": model.state_dict(), "args": argparse.Namespace(lr=1e-5)}, tmp_path / "p.pt")
    spec = _spec(tmp_path, "pathgen-clip", small, tmp_path / "p.pt")
    with pytest.raises(ModelLoadError, match=r"model 'pathgen-clip-twin': cannot read .*p\.pt \(params\.pretrained in "
                                             r".*\) as open_clip weights with weights_only=True"):
        OpenCLIP(Catalog.load([spec]).model("pathgen-clip-twin")).load()


@pytest.mark.slow
def test_pathgen_clip_twin_zero_shot_through_cytoreg_eval(tmp_path, monkeypatch):
    """The real ViT-B-16 (random weights, 150M parameters) saved as an open_clip training checkpoint,
    found through PATHGEN_CLIP_CHECKPOINT by the built-in spec as shipped."""
    from cytoreg.cli import main
    from cytoreg.models.open_clip_adapter import OpenCLIP
    from cytoreg.registry.builtins import TASK_KINDS
    from cytoreg.tasks.samples import open_image

    ckpt = tmp_path / "pathgenclip.pt"
    save_pathgen_checkpoint(ckpt, "ViT-B-16-quickgelu", layout="training")
    monkeypatch.setenv("PATHGEN_CLIP_CHECKPOINT", str(ckpt))
    d = tmp_path / "specs"
    d.mkdir()
    (d / "t.yaml").write_text("spec: task/v1\nname: zoo-clip\nextends: demo\nsampling: {seed: 42, test_per_class: 1}\n")
    out = tmp_path / "run"
    rc = main(["eval", "--tasks", "zoo-clip", "--models", "pathgen-clip", "-o", str(out), "--include", str(d),
               "--bootstrap", "10", "--no-progress", "--device", "cpu"])
    assert rc == 0
    recs = {json.loads(x)["id"]: json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()}
    kind = TASK_KINDS.get("classification")(Catalog.load([d]).task("zoo-clip"))
    prep = kind.prepare()
    # as the repository's Zero-shot_classification scripts build it
    ref, _, pre = open_clip.create_model_and_transforms("ViT-B-16", pretrained=str(ckpt), force_quick_gelu=True)
    tok = open_clip.get_tokenizer("ViT-B-16")
    ref.eval()
    with torch.no_grad():
        rows = [torch.nn.functional.normalize(
            torch.nn.functional.normalize(ref.encode_text(tok(texts)), dim=-1).mean(0), dim=0)
            for texts in kind.class_prompts()]
        text = torch.stack(rows)
        imgs = [open_image(s.image.read_bytes()) for s in prep.test]
        px = torch.stack([pre(im) for im in imgs])
        im = torch.nn.functional.normalize(ref.encode_image(px), dim=-1)
        probs = (ref.logit_scale.exp() * im @ text.T).softmax(dim=-1).numpy()
        gelu, _, gpre = open_clip.create_model_and_transforms("ViT-B-16", pretrained=str(ckpt))  # the README's call
        gim = torch.nn.functional.normalize(gelu.eval().encode_image(px[:2]), dim=-1)
    assert len(prep.test) == len(prep.labels) == 11
    for s, row in zip(prep.test, probs):
        got = recs[s.id]["response"]
        np.testing.assert_allclose([got[lab] for lab in prep.labels], row, atol=1e-5)
    assert not torch.allclose(gim, im[:2], atol=1e-3)  # GELU instead of QuickGELU: other embeddings
    ad = OpenCLIP(Catalog.load([]).model("pathgen-clip"))  # the card's preprocessing, as loaded
    ad.load()
    steps = ad._preprocess.transforms
    assert (steps[0].size, steps[0].interpolation.value, steps[1].size) == (224, "bicubic", (224, 224))
    assert (list(steps[-1].mean), list(steps[-1].std)) == OPENAI
    (ev,) = json.loads((out / "results.json").read_text())["evaluations"]
    assert ev["model"] == "pathgen-clip" and "auc_macro" in ev["metrics"]


def _other_keys(path):
    torch.save({"state_dict": {"module.encoder.weight": torch.zeros(4, 4), "module.head.bias": torch.zeros(4)}}, path)


def _meta_keys(arch):
    with torch.device("meta"):  # the architecture's keys, counted independently of cytoreg
        return sorted(open_clip.create_model(arch, pretrained=None, device="meta").state_dict())


def test_models_check_compares_the_file_keys_with_the_architecture(tmp_path, monkeypatch, capsys):
    """The audit: PATHGEN_CLIP_CHECKPOINT at a torch file with other keys read "ready"; now the deep
    check reads the file's key names (no tensor) against ViT-B-16-quickgelu built on the meta device."""
    from cytoreg.cli import main

    _other_keys(tmp_path / "other.pt")
    monkeypatch.setenv("PATHGEN_CLIP_CHECKPOINT", str(tmp_path / "other.pt"))
    assert main(["models", "check", "pathgen-clip"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    keys = _meta_keys("ViT-B-16-quickgelu")
    assert (f"keys {tmp_path / 'other.pt'} is present but not a ViT-B-16-quickgelu state dict: {len(keys)} missing "
            f"(e.g. {', '.join(keys[:3])}), 2 unexpected (e.g. encoder.weight, head.bias)") in out
    assert "status NOT READY" in out
    # a whole training checkpoint (state_dict, module. prefixes, optimizer) of the spec's config fits
    small, _ = register_tiny_configs(tmp_path / "cfg")
    save_pathgen_checkpoint(tmp_path / "epoch_10.pt", small, layout="training")
    spec = _spec(tmp_path, "pathgen-clip", small, tmp_path / "epoch_10.pt")
    assert main(["models", "check", "pathgen-clip-twin", "--include", str(spec)]) == 0
    out = capsys.readouterr().out
    assert f"keys     epoch_10.pt fits {small}" in out and "status   ready" in out


def test_a_present_file_with_wrong_keys_is_named_without_download_advice(tmp_path, monkeypatch):
    """The audit: open_clip's download advice and torch's ~300 missing keys; now what does not fit."""
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.open_clip_adapter import OpenCLIP

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    small, _ = register_tiny_configs(tmp_path / "cfg")
    _other_keys(tmp_path / "other.pt")
    spec = _spec(tmp_path, "pathgen-clip", small, tmp_path / "other.pt")
    with pytest.raises(ModelLoadError) as err:
        OpenCLIP(Catalog.load([spec]).model("pathgen-clip-twin")).load()
    msg = str(err.value)
    keys = _meta_keys(small)
    assert msg == (f"model 'pathgen-clip-twin': {tmp_path / 'other.pt'} (params.pretrained in {spec}): file present "
                   f"but not a {small} state dict: {len(keys)} missing (e.g. {', '.join(keys[:3])}), 2 unexpected "
                   "(e.g. encoder.weight, head.bias). Check params.model, or that the file is the checkpoint meant "
                   "for this model")
    assert "download" not in msg and "HF_HUB_OFFLINE" not in msg and msg.count("\n") == 0
