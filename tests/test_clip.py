"""CLIP-family zero-shot through the real open_clip loading path (local-dir:), on a tiny model."""
import json

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytestmark = pytest.mark.torch

from tiny_clip import save_tiny_clip  # noqa: E402
from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.errors import ModelLoadError  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402
from cytoreg.tasks.kinds import class_embeddings, zero_shot_scores  # noqa: E402


@pytest.fixture(scope="module")
def clip_specs(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    save_tiny_clip(root / "tiny")
    d = root / "specs"
    d.mkdir()
    (d / "tiny.yaml").write_text(f"spec: model/v1\nname: tiny-clip\nadapter: open_clip\n"
                                 f"params: {{model: 'local-dir:{root / 'tiny'}'}}\nexecution: {{batch_size: 32}}\n")
    (d / "small.yaml").write_text("spec: task/v1\nname: small-clip\nextends: demo\nsampling: {test_per_class: 4}\n"
                                  "prompts:\n  clip:\n    templates: ['an image of {label}', 'a photo of a {label} cell']\n")
    return d


def load_adapter(d):
    from cytoreg.models.open_clip_adapter import OpenCLIP

    adapter = OpenCLIP(Catalog.load([d]).model("tiny-clip"))
    adapter.load()
    return adapter


def test_local_dir_loads_and_zero_shot_equals_numpy(clip_specs):
    import open_clip
    import torch
    from PIL import Image

    adapter = load_adapter(clip_specs)
    ref_model, _, ref_pre = open_clip.create_model_and_transforms(f"local-dir:{adapter.model_id[10:]}")
    img = Image.new("RGB", (40, 40), (200, 30, 90))
    emb = adapter.encode_images([img])
    with torch.no_grad():
        ref = ref_model.encode_image(ref_pre(img)[None], normalize=True).numpy()
    np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-6)
    prompts = [["an image of Alpha", "a photo of Alpha"], ["an image of Beta"]]
    cls = class_embeddings(adapter, prompts)
    probs = zero_shot_scores(emb.astype(np.float64), cls, adapter.logit_scale())
    # manual: mean of normalised text embeddings, renormalised; softmax(scale * cos)
    t = [adapter.encode_texts(p) for p in prompts]
    c = np.stack([(x / np.linalg.norm(x, axis=1, keepdims=True)).mean(0) for x in t])
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    logits = adapter.logit_scale() * (emb @ c.T)
    manual = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(probs, manual, rtol=1e-5)
    assert adapter.logit_scale() == pytest.approx(1 / 0.07, rel=1e-4)
    # ensembling does not depend on template order
    np.testing.assert_allclose(class_embeddings(adapter, [list(reversed(prompts[0])), prompts[1]]), cls, atol=1e-6)


def test_end_to_end_eval_and_embedding_cache(clip_specs, tmp_path):
    cfg = EvalConfig(["small-clip"], ["tiny-clip"], output=tmp_path / "run", include=[str(clip_specs)],
                     progress=False, bootstrap=50)
    res = evaluate(cfg)
    ev = res["evaluations"][0]
    assert ev["n"] == 44 and ev["errors"] == 0
    assert 0 <= ev["metrics"]["auc_macro"] <= 1 and ev["metrics"]["invalid_rate"] == 0
    assert ev["requests"]["sent"] == 44
    samples = [json.loads(l) for l in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert all(abs(sum(s["response"].values()) - 1) < 1e-4 for s in samples)
    # another template set: responses are new, image embeddings come from the embedding cache
    (clip_specs / "small2.yaml").write_text("spec: task/v1\nname: small-clip2\nextends: small-clip\n"
                                            "prompts:\n  clip:\n    templates: ['{label}']\n")
    res2 = evaluate(EvalConfig(["small-clip2"], ["tiny-clip"], output=tmp_path / "run2", include=[str(clip_specs)],
                               progress=False, bootstrap=50, cache=tmp_path / "run" / "cache.sqlite"))
    assert res2["evaluations"][0]["requests"]["sent"] == 0 and res2["evaluations"][0]["requests"]["cached"] == 0


def test_missing_weights_error_names_id_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    from cytoreg.models.open_clip_adapter import OpenCLIP

    (tmp_path / "m.yaml").write_text("spec: model/v1\nname: bmc\nadapter: open_clip\n"
                                     "params: {model: 'hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224'}\n")
    adapter = OpenCLIP(Catalog.load([tmp_path]).model("bmc"))
    with pytest.raises(ModelLoadError) as err:
        adapter.load()
    msg = str(err.value)
    assert "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224" in msg
    assert str(tmp_path / "hub") in msg and "models--microsoft--BiomedCLIP" in msg
    assert "HF_HUB_OFFLINE" in msg
