"""KEEP through the built-in spec on a tiny twin in its published layout (config.json with
auto_map, modeling_keep.py, model.safetensors, BERT tokenizer): the remote code runs only when the
spec trusts it, zero-shot probabilities through ``cytoreg eval`` equal an independent computation
(the card's transform and tokenizer call, prompt ensembling over ``prompts.clip``, softmax of the
learned logit_scale × cosine), and the remote code's timm LayerScale swap stays inside KEEP."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("timm")
torch = pytest.importorskip("torch")

from tiny_keep import LOGIT_SCALE, save_tiny_keep  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

TASK = ("spec: task/v1\nname: zoo-clip\nextends: demo\nsampling: {seed: 42, test_per_class: 2}\n"
        "prompts: {clip: {templates: ['an image of {label}', 'a blood smear showing a {label}', "
        "'a microscopy image of a {label} cell'], classnames: {Lymphocyte: [Lymphocyte, small lymphocyte], "
        "Monocyte: [Monocyte, monocytic cell]}}}\n")
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def _words() -> str:
    demo = Catalog.load([]).task("demo")
    return " ".join(demo.get("labels")) + " " + json.dumps(demo.get("prompts")) + " " + TASK


def _specs(tmp_path: Path, folder: Path, extra: str = "") -> Path:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    (d / "m.yaml").write_text(f"spec: model/v1\nname: keep-twin\nextends: keep\n{extra}"
                              f"params: {{model: '{folder}'}}\nexecution: {{batch_size: 8, workers: 0}}\n")
    (d / "t.yaml").write_text(TASK)
    return d


def _remote_modules(folder: Path) -> list[str]:
    return [m for m in sys.modules if m.startswith("transformers_modules") and folder.name in m]


def card_transform():
    """The card's torchvision pipeline, written out independently of the adapter."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop((224, 224)),
                      T.ToTensor(), T.Normalize(*IMAGENET)])


def test_keep_spec_states_the_card():
    s = Catalog.load([]).model("keep")
    p = s.get("params")
    assert (s.get("adapter"), p["model"], s.get("trust_remote_code")) == ("hf_remote_clip", "Astaxanthin/KEEP", True)
    assert p["preprocess"] == {"resize": 224, "crop": 224, "interpolation": "bicubic",
                               "mean": IMAGENET[0], "std": IMAGENET[1]}
    assert (p["text_padding"], p["max_length"]) == ("max_length", 256)
    assert s.get("license") == "MIT" and s.get("gated") is None
    assert s.get("homepage") == "https://huggingface.co/Astaxanthin/KEEP"
    for source in ("quick_start/keep_inference.py", "WSI_evaluation/utils.py", "softmax(10 x cosine)", "LayerScale"):
        assert source in s.get("notes")


def test_without_trust_remote_code_it_is_refused_before_any_remote_code_runs(tmp_path, capsys):
    from cytoreg.cli import main
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.hf_remote_clip import HFRemoteCLIP

    folder = tmp_path / "keep_untrusted"
    save_tiny_keep(folder, _words())
    d = _specs(tmp_path, folder, "trust_remote_code: false\n")
    spec = Catalog.load([d]).model("keep-twin")
    ad = HFRemoteCLIP(spec)
    with pytest.raises(ModelLoadError, match=r"model 'keep-twin': .* set trust_remote_code: true in .*m\.yaml"):
        ad.load()
    assert ad.check() and "trust_remote_code: true" in ad.check()[0]
    rc = main(["eval", "--tasks", "zoo-clip", "--models", "keep-twin", "-o", str(tmp_path / "run"), "--include",
               str(d), "--no-progress"])
    out = capsys.readouterr()
    assert rc != 0 and "Traceback" not in out.out + out.err
    assert "trust_remote_code: true" in out.out + out.err and "m.yaml" in out.out + out.err
    assert not _remote_modules(folder)  # modeling_keep.py was never imported


def test_keep_twin_zero_shot_equals_an_independent_computation(tmp_path):
    from cytoreg.cli import main
    from cytoreg.registry.builtins import TASK_KINDS
    from cytoreg.tasks.samples import open_image

    visual, head, text, tok = save_tiny_keep(tmp_path / "w", _words())
    d = _specs(tmp_path, tmp_path / "w")
    out = tmp_path / "run"
    rc = main(["eval", "--tasks", "zoo-clip", "--models", "keep-twin", "-o", str(out), "--include", str(d),
               "--bootstrap", "10", "--no-progress"])
    assert rc == 0
    recs = {json.loads(x)["id"]: json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()}
    kind = TASK_KINDS.get("classification")(Catalog.load([d]).task("zoo-clip"))
    prep = kind.prepare()
    prompts = kind.class_prompts()
    assert len(prompts) == 11 and min(len(p) for p in prompts) == 3 and max(len(p) for p in prompts) == 6
    nrm = torch.nn.functional.normalize
    with torch.inference_mode():
        rows = []
        for texts in prompts:  # mean of the normalised prompt embeddings, re-normalised
            t = tok(texts, max_length=256, padding="max_length", truncation=True, return_tensors="pt")
            assert t["input_ids"].shape[1] == 256
            rows.append(nrm(nrm(text(**t).pooler_output, dim=-1).mean(0), dim=0))
        class_emb = torch.stack(rows)
        x = torch.stack([card_transform()(open_image(s.image.read_bytes()).convert("RGB")) for s in prep.test])
        from cytoreg.models.hf_remote_clip import HFRemoteCLIP

        ad = HFRemoteCLIP(Catalog.load([d]).model("keep-twin"))
        assert torch.equal(torch.stack([ad.preprocess(open_image(s.image.read_bytes())) for s in prep.test]), x)
        assert x.shape[1:] == (3, 224, 224)
        im = nrm(head(visual(x)), dim=-1)
        expected = torch.softmax(LOGIT_SCALE * im @ class_emb.T, dim=-1).numpy()
        single = torch.stack([nrm(text(**tok([p[0]], max_length=256, padding="max_length", return_tensors="pt"))
                                  .pooler_output, dim=-1)[0] for p in prompts])
        first_only = torch.softmax(LOGIT_SCALE * im @ single.T, dim=-1).numpy()
    for s, row in zip(prep.test, expected):
        got = recs[s.id]["response"]
        np.testing.assert_allclose([got[lab] for lab in prep.labels], row, atol=1e-5)
    assert np.allclose(expected.sum(1), 1.0, atol=1e-5)
    assert not np.allclose(expected, first_only, atol=1e-4)  # the ensemble, not the first template, decided
    (ev,) = json.loads((out / "results.json").read_text())["evaluations"]
    assert "auc_macro" in ev["metrics"] and "ece" in ev["metrics"]


def test_the_remote_layerscale_swap_stays_inside_keep(tmp_path):
    import timm
    import timm.models.vision_transformer as tvit
    from cytoreg.models.hf_remote_clip import HFRemoteCLIP
    from PIL import Image

    own = tvit.LayerScale
    folder = tmp_path / "keep_confined"
    save_tiny_keep(folder, _words())
    spec = Catalog.load([_specs(tmp_path, folder)]).model("keep-twin")
    img = [Image.new("RGB", (300, 260), (200, 120, 160))]
    first = HFRemoteCLIP(spec)
    a = first.encode_images(img)
    assert _remote_modules(folder)  # the remote module ran (it swaps LayerScale at import) ...
    assert tvit.LayerScale is own  # ... and timm has its own back
    names = [n for n, _ in timm.create_model("vit_small_patch16_224", pretrained=False, init_values=1e-5,
                                             depth=1, num_classes=0).named_parameters()]
    assert "blocks.0.ls1.gamma" in names  # a timm model built afterwards is timm's
    again = HFRemoteCLIP(spec)  # the module is not re-run: the swap is applied again for KEEP
    np.testing.assert_allclose(again.encode_images(img), a, atol=1e-6)
    assert tvit.LayerScale is own


def test_weights_that_do_not_fit_the_model_code_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from cytoreg.errors import ModelLoadError
    from cytoreg.models.hf_remote_clip import HFRemoteCLIP

    folder = tmp_path / "keep_broken"
    save_tiny_keep(folder, _words())
    sd = load_file(str(folder / "model.safetensors"))
    del sd["visual_head.0.weight"]
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    ad = HFRemoteCLIP(Catalog.load([_specs(tmp_path, folder)]).model("keep-twin"))
    with pytest.raises(ModelLoadError, match=r"do not fit its model code \(missing keys: \['visual_head\.0\.weight'\]"):
        ad.load()


def test_models_check_finds_the_twin_in_the_cache(tmp_path, monkeypatch, capsys):
    import timm.models.vision_transformer as tvit
    from cytoreg.cli import main

    own = tvit.LayerScale
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "check", "keep"]) == 1
    assert "hf download Astaxanthin/KEEP" in capsys.readouterr().out
    root = cache / "models--Astaxanthin--KEEP"
    save_tiny_keep(root / "snapshots" / ("0" * 40), _words())
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("0" * 40)
    rc = main(["models", "check", "keep"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "loads    KEEPConfig (keep), BertTokenizer" in out
    assert tvit.LayerScale is own
    shutil.rmtree(cache)


def test_the_model_code_is_part_of_the_cache_identity(tmp_path):
    from cytoreg.models.hf_remote_clip import HFRemoteCLIP

    folder = tmp_path / "keep_ident"
    save_tiny_keep(folder, _words())
    spec = Catalog.load([_specs(tmp_path, folder)]).model("keep-twin")
    before = HFRemoteCLIP(spec).fingerprint()
    (folder / "modeling_keep.py").write_text((folder / "modeling_keep.py").read_text() + "\n# edited\n")
    assert HFRemoteCLIP(spec).fingerprint() != before


def test_spec_parameters_follow_from_the_published_architecture():
    """The card's ViT-L/16 (timm kwargs as in quick_start/keep_inference.py), a BERT-base text tower and
    the Linear-GELU-Linear head to 768, counted on the meta device: the spec's 414M and 1.66 GB."""
    import re

    import timm
    from transformers import BertConfig, BertModel

    s = Catalog.load([]).model("keep")
    with torch.device("meta"):
        visual = timm.create_model("vit_large_patch16_224", pretrained=False, img_size=224, patch_size=16,
                                   init_values=1e-5, num_classes=0, dynamic_img_size=True)
        text = BertModel(BertConfig())
    head = 1024 * 768 + 768 + 768 * 768 + 768
    count = sum(p.numel() for m in (visual, text) for p in m.parameters()) + head + 1  # + logit_scale
    stated = float(re.match(r"(\d+)M", s.get("parameters")).group(1)) * 1e6
    assert abs(count - stated) < 0.5e6, count
    assert text.config.hidden_size == 768  # = projection_dim: the text embedding needs no projection
    assert abs(count * 4 / 1e9 - 1.66) < 0.01 and "1.66 GB (fp32)" in s.get("memory")


def test_a_failing_model_code_is_named_as_the_checkpoints_not_a_cytoreg_bug(tmp_path, capsys):
    from cytoreg.cli import main

    folder = tmp_path / "keep_failing"
    save_tiny_keep(folder, _words())
    code = (folder / "modeling_keep.py").read_text()
    (folder / "modeling_keep.py").write_text(code.replace("        super().__init__(config)\n        size",
                                                          "        super().__init__(config)\n"
                                                          "        raise TypeError('old API')\n        size", 1))
    d = _specs(tmp_path, folder)
    rc = main(["eval", "--tasks", "zoo-clip", "--models", "keep-twin", "-o", str(tmp_path / "run"), "--include",
               str(d), "--no-progress"])
    out = capsys.readouterr()
    text = out.out + out.err
    # a load failure during the run stops that model (exit 3, the run folder written), as a fatal API error does
    assert rc == 3 and "Traceback" not in text and "bug in cytoreg" not in text
    assert f"the model code shipped with {folder} failed while loading the model (TypeError: old API)" in text
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "(TypeError: old API)" in res["models"]["keep-twin"]["stopped_reason"]
    assert {ev["status"] for ev in res["evaluations"]} == {"stopped"}


def test_a_package_the_model_code_needs_is_named(tmp_path):
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.hf_remote_clip import HFRemoteCLIP

    folder = tmp_path / "keep_needs"
    save_tiny_keep(folder, _words())
    code = (folder / "modeling_keep.py").read_text()
    (folder / "modeling_keep.py").write_text("import cytoreg_no_such_package\n" + code)
    ad = HFRemoteCLIP(Catalog.load([_specs(tmp_path, folder)]).model("keep-twin"))
    with pytest.raises(ModelLoadError, match=r"needs a package that is not installed .*cytoreg_no_such_package"):
        ad.load()
