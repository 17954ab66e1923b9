"""CONCH (tiny CoCa through the published conch package), transformers-format CLIP (PLIP's
layout) and the DataLoader image pipeline."""
import json

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytestmark = pytest.mark.torch

from tiny_clip import save_tiny_clip, save_tiny_conch, save_tiny_hf_clip  # noqa: E402
from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.errors import ModelLoadError  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

from cytoreg.tasks.samples import open_image  # noqa: E402

SMALL = ("spec: task/v1\nname: small-clip\nextends: demo\nsampling: {test_per_class: 3}\n"
         "prompts:\n  clip:\n    templates: ['an image of {label}', 'a photo of a {label} cell']\n")


def _specs(tmp, model_yaml: str):
    d = tmp / "specs"
    d.mkdir(exist_ok=True)
    (d / "m.yaml").write_text(model_yaml)
    (d / "small.yaml").write_text(SMALL)
    return d


def _records(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_conch_tiny_coca_matches_the_conch_package(tmp_path):
    pytest.importorskip("conch.open_clip_custom")
    from conch.open_clip_custom import create_model_from_pretrained

    cfg_path, ckpt = save_tiny_conch(tmp_path / "conch")
    d = _specs(tmp_path, f"spec: model/v1\nname: tiny-conch\nadapter: conch\n"
                         f"params: {{model: '{cfg_path}', checkpoint: '{ckpt}'}}\n")
    from cytoreg.models.open_clip_adapter import Conch

    adapter = Conch(Catalog.load([d]).model("tiny-conch"))
    adapter.load()
    ref_model, ref_pre = create_model_from_pretrained(json.loads(cfg_path.read_text()), checkpoint_path=str(ckpt))
    ref_model.eval()
    task = Catalog.load([d]).task("small-clip")
    from cytoreg.registry.builtins import TASK_KINDS

    prep = TASK_KINDS.get("classification")(task).prepare()
    images = [open_image(s.image.read_bytes()) for s in prep.test[:4]]
    import torch

    ours = adapter.encode_images(images)
    with torch.inference_mode():
        theirs = ref_model.encode_image(torch.stack([ref_pre(im) for im in images]), proj_contrast=True,
                                        normalize=True).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # text side: the transformers-5-safe tokenisation equals CONCH's ids layout (bos … eos pad, length 128)
    ids = adapter._tokenize(["an image of a neutrophil"])
    assert ids.shape == (1, 128) and ids[0, 0].item() == 1 and ids[0, -1].item() == 0
    assert adapter.logit_scale() == pytest.approx(float(ref_model.logit_scale.exp()))

    out = tmp_path / "run"
    res = evaluate(EvalConfig(["small-clip"], ["tiny-conch"], output=out, include=[str(d)], progress=False,
                              bootstrap=0))
    (ev,) = res["evaluations"]
    assert ev["n"] == len(prep.test) and ev["metrics"]["invalid_rate"] == 0
    assert 0 <= ev["metrics"]["auc_macro"] <= 1


def test_conch_checkpoint_mismatch_and_missing_are_clear(tmp_path):
    pytest.importorskip("conch.open_clip_custom")
    import torch

    cfg_path, ckpt = save_tiny_conch(tmp_path / "conch")
    state = torch.load(ckpt, weights_only=True)
    state.pop("logit_scale")
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.bin"
    torch.save(state, bad)
    from cytoreg.models.open_clip_adapter import Conch

    d = _specs(tmp_path, f"spec: model/v1\nname: c\nadapter: conch\nparams: {{model: '{cfg_path}', checkpoint: '{bad}'}}\n")
    with pytest.raises(ModelLoadError, match=r"does not match .*missing \['logit_scale'\].*unexpected \['extra.weight'\]"):
        Conch(Catalog.load([d]).model("c")).load()
    (d / "m.yaml").write_text(f"spec: model/v1\nname: c\nadapter: conch\nparams: {{checkpoint: '{tmp_path}/nope.bin'}}\n")
    with pytest.raises(ModelLoadError, match=r"checkpoint not found at .*nope.bin .*params.checkpoint.*request access"):
        Conch(Catalog.load([d]).model("c")).load()


def test_hf_clip_tiny_model_zero_shot_equals_transformers(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import CLIPModel, CLIPProcessor

    folder = save_tiny_hf_clip(tmp_path / "plip-like")
    d = _specs(tmp_path, f"spec: model/v1\nname: tiny-plip\nadapter: hf_clip\nparams: {{model: '{folder}'}}\n"
                         "execution: {batch_size: 8}\n")
    out = tmp_path / "run"
    evaluate(EvalConfig(["small-clip"], ["tiny-plip"], output=out, include=[str(d)], progress=False, bootstrap=0))
    recs = _records(out)
    model, proc = CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)
    from cytoreg.registry.builtins import TASK_KINDS

    kind = TASK_KINDS.get("classification")(Catalog.load([d]).task("small-clip"))
    prep = kind.prepare()
    prompts = kind.class_prompts()
    with torch.inference_mode():
        class_rows = []
        for texts in prompts:
            t = model.get_text_features(**proc.tokenizer(texts, padding=True, return_tensors="pt"))
            t = getattr(t, "pooler_output", t)
            t = torch.nn.functional.normalize(t, dim=-1).mean(0)
            class_rows.append(torch.nn.functional.normalize(t, dim=0))
        text = torch.stack(class_rows)
        imgs = proc.image_processor(images=[open_image(s.image.read_bytes()) for s in prep.test], return_tensors="pt")
        im = model.get_image_features(pixel_values=imgs["pixel_values"])
        im = torch.nn.functional.normalize(getattr(im, "pooler_output", im), dim=-1)
        probs = (model.logit_scale.exp() * im @ text.T).softmax(-1).numpy()
    by_id = {r["id"]: r for r in recs}
    for s, row in zip(prep.test, probs):
        got = by_id[s.id]["response"]
        np.testing.assert_allclose([got[lab] for lab in prep.labels], row, atol=1e-5)


def test_hf_clip_missing_model_error(tmp_path):
    pytest.importorskip("transformers")
    d = _specs(tmp_path, "spec: model/v1\nname: p\nadapter: hf_clip\nparams: {model: nobody/no-such-plip}\n")
    from cytoreg.models.hf_clip import HFCLIP

    with pytest.raises(ModelLoadError, match=r"cannot load nobody/no-such-plip; looked in the Hugging Face cache .*"
                                             r"models--nobody--no-such-plip.*HF_HUB_OFFLINE"):
        HFCLIP(Catalog.load([d]).model("p")).load()


def test_dataloader_workers_give_identical_results_and_bad_images_are_records(tmp_path):
    """Same probabilities with 0 and 2 workers; an unreadable image is one failed sample, not a crash."""
    save_tiny_clip(tmp_path / "tiny")
    src = Catalog.load([]).task("demo")
    root = tmp_path / "pbc"
    import shutil

    from cytoreg.tasks.sources.base import resolve_path

    shutil.copytree(resolve_path(src.get("data")["root"]), root)
    results = {}
    for workers in (0, 2):
        d = tmp_path / f"specs{workers}"
        d.mkdir()
        (d / "m.yaml").write_text(f"spec: model/v1\nname: tiny\nadapter: open_clip\n"
                                  f"params: {{model: 'local-dir:{tmp_path / 'tiny'}'}}\n"
                                  f"execution: {{batch_size: 16, workers: {workers}}}\n")
        (d / "t.yaml").write_text(f"spec: task/v1\nname: t\nextends: demo\ndata: {{root: '{root}'}}\n"
                                  "sampling: {test_per_class: 6}\n")
        if workers == 0:  # corrupt one image that the seeded sampling puts in the test set
            from cytoreg.registry.builtins import TASK_KINDS

            prep = TASK_KINDS.get("classification")(Catalog.load([d]).task("t")).prepare()
            victim = prep.test[0]
            open(str(victim.image), "wb").write(b"not an image at all")
        out = tmp_path / f"run{workers}"
        evaluate(EvalConfig(["t"], ["tiny"], output=out, include=[str(d)], progress=False, bootstrap=0))
        results[workers] = {r["id"]: r for r in _records(out)}
    assert results[0].keys() == results[2].keys()
    failed = [r for r in results[2].values() if r["error"]]
    assert [r["id"] for r in failed] == [victim.id] and failed[0]["parsed"] is None
    assert str(victim.image) in failed[0]["error"]
    assert [r["id"] for r in results[0].values() if r["error"]] == [victim.id]
    for k, r in results[0].items():
        if r["error"] is None:
            assert r["response"] == pytest.approx(results[2][k]["response"], abs=1e-6)


def test_fully_cached_rerun_does_not_load_the_model(tmp_path, monkeypatch):
    save_tiny_clip(tmp_path / "tiny")
    d = _specs(tmp_path, f"spec: model/v1\nname: tiny\nadapter: open_clip\n"
                         f"params: {{model: 'local-dir:{tmp_path / 'tiny'}'}}\n")
    cfg = EvalConfig(["small-clip"], ["tiny"], output=tmp_path / "run", include=[str(d)], progress=False, bootstrap=0)
    first = evaluate(cfg)["evaluations"][0]["metrics"]
    from cytoreg.models.open_clip_adapter import OpenCLIP

    def refuse(self):
        raise AssertionError("the model was loaded although every response was cached")

    monkeypatch.setattr(OpenCLIP, "load", refuse)
    again = evaluate(cfg)["evaluations"][0]
    assert again["metrics"] == first and again["requests"]["cached"] == again["n"]
