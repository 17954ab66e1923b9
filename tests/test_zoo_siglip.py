"""MedSigLIP through the built-in spec on a tiny SigLIP twin: zero-shot probabilities are the
model's own sigmoid head (``sigmoid(logit_scale · cos + logit_bias)``), texts padded to
max_length as SigLIP was trained, end to end through ``cytoreg eval``."""
import json

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
torch = pytest.importorskip("torch")

from tiny_siglip import save_tiny_siglip  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

TASK = ("spec: task/v1\nname: zoo-clip\nextends: demo\nsampling: {seed: 42, test_per_class: 2}\n")


def _words() -> str:
    demo = Catalog.load([]).task("demo")
    return " ".join(" ".join(t) if isinstance(t, list) else str(t) for t in [demo.get("labels"),
                                                                              json.dumps(demo.get("prompts"))])


def test_medsiglip_spec_states_the_card():
    s = Catalog.load([]).model("medsiglip")
    p = s.get("params")
    assert (p["model"], p["text_padding"], p["max_length"]) == ("google/medsiglip-448", "max_length", 64)
    assert s.get("gated") == "https://huggingface.co/google/medsiglip-448" and "sigmoid" in s.get("notes")


def test_medsiglip_twin_zero_shot_is_the_sigmoid_head(tmp_path):
    from cytoreg.cli import main
    from cytoreg.registry.builtins import TASK_KINDS
    from cytoreg.tasks.samples import open_image

    model, proc = save_tiny_siglip(tmp_path / "w", _words())
    d = tmp_path / "specs"
    d.mkdir()
    (d / "m.yaml").write_text(f"spec: model/v1\nname: medsiglip-twin\nextends: medsiglip\n"
                              f"params: {{model: '{tmp_path / 'w'}'}}\nexecution: {{batch_size: 8, workers: 0}}\n")
    (d / "t.yaml").write_text(TASK)
    out = tmp_path / "run"
    rc = main(["eval", "--tasks", "zoo-clip", "--models", "medsiglip-twin", "-o", str(out), "--include", str(d),
               "--bootstrap", "10", "--no-progress"])
    assert rc == 0
    recs = {json.loads(x)["id"]: json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()}
    kind = TASK_KINDS.get("classification")(Catalog.load([d]).task("zoo-clip"))
    prep = kind.prepare()
    prompts = kind.class_prompts()
    with torch.inference_mode():
        rows = []
        for texts in prompts:
            tok = proc.tokenizer(texts, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
            t = model.get_text_features(**tok)
            t = torch.nn.functional.normalize(getattr(t, "pooler_output", t), dim=-1).mean(0)
            rows.append(torch.nn.functional.normalize(t, dim=0))
        text = torch.stack(rows)
        imgs = [open_image(s.image.read_bytes()) for s in prep.test]
        px = proc.image_processor(images=imgs, return_tensors="pt")["pixel_values"]
        assert px.shape[-2:] == (448, 448)
        im = model.get_image_features(pixel_values=px)
        im = torch.nn.functional.normalize(getattr(im, "pooler_output", im), dim=-1)
        logits = model.logit_scale.exp() * im @ text.T + model.logit_bias
        expected = torch.sigmoid(logits).numpy()
        # one prompt per label: the same numbers as the model's own forward pass
        single = proc(text=[p[0] for p in prompts], images=imgs[:2], padding="max_length", max_length=64,
                      return_tensors="pt")
        own = torch.sigmoid(model(**single).logits_per_image).numpy()
    for s, row in zip(prep.test, expected):
        got = recs[s.id]["response"]
        np.testing.assert_allclose([got[lab] for lab in prep.labels], row, atol=1e-5)
    assert not np.allclose(expected.sum(1), 1.0, atol=1e-2)  # a sigmoid per label, not a softmax
    from cytoreg.models.hf_clip import HFCLIP

    ad = HFCLIP(Catalog.load([d]).model("medsiglip-twin"))
    assert ad.head() == "sigmoid"
    t1 = ad.encode_texts([p[0] for p in prompts])
    np.testing.assert_allclose(ad.zero_shot_probs(ad.encode_images(imgs[:2]), t1), own, atol=1e-5)
    res = json.loads((out / "results.json").read_text())
    (ev,) = res["evaluations"]
    assert "auc_macro" in ev["metrics"] and "ece" in ev["metrics"]


def test_medsiglip_twin_processor_has_the_published_preprocessing(tmp_path):
    """google/medsiglip-448's preprocessor_config.json: SiglipImageProcessor, 448 x 448, bicubic
    (resample 3), rescale 1/255, mean = std = 0.5; the twin is saved with the same numbers, and an
    image comes out at 448 px scaled to [-1, 1] exactly as (x / 255 - 0.5) / 0.5."""
    from PIL import Image

    _, proc = save_tiny_siglip(tmp_path / "w", _words())
    ip = proc.image_processor
    assert type(ip).__name__.startswith("SiglipImageProcessor")
    assert (ip.size["height"], ip.size["width"], int(ip.resample)) == (448, 448, 3)
    assert (list(ip.image_mean), list(ip.image_std)) == ([0.5] * 3, [0.5] * 3)
    im = Image.new("RGB", (448, 448), (255, 0, 128))
    px = proc.image_processor(images=[im], return_tensors="pt")["pixel_values"][0]
    np.testing.assert_allclose(px[:, 0, 0].numpy(), [1.0, -1.0, 128 / 255 / 0.5 - 1.0], atol=1e-6)
