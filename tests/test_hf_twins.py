"""Every built-in local VLM spec on a tiny twin of its real architecture (``hf_twins``): the
Llama-3.2-Vision (Mllama) and IDEFICS specs as shipped, through ``cytoreg eval``."""
import importlib.util

import numpy as np
import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.torch

import torch  # noqa: E402
from hf_twins import (TWINS, assert_batched_equals_single, assert_image_changes_output, build_twin,  # noqa: E402
                      local_vlm_specs, run_eval)
from cytoreg.errors import ModelLoadError  # noqa: E402
from cytoreg.registry.builtins import TASK_KINDS  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

GENERATORS = [n for n, a in sorted(local_vlm_specs().items()) if a == "hf"]
HIDDEN = [n for n, a in sorted(local_vlm_specs().items()) if a == "hf_hidden"]


def _missing(twin) -> list[str]:
    return [p for p in twin.needs if importlib.util.find_spec(p) is None or not torch.cuda.is_available()]


def test_every_local_vlm_spec_has_a_twin():
    assert set(local_vlm_specs()) == set(TWINS), "register a tiny twin in tests/hf_twins.py for each hf spec"
    assert {"llama-3.2-11b-vision", "idefics-9b", "idefics-80b"} <= set(GENERATORS)
    assert {"idefics-9b-hidden", "idefics-80b-hidden"} <= set(HIDDEN)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """One twin per spec, built once for the module."""
    root = tmp_path_factory.mktemp("twins")
    built = {}
    for name in TWINS:
        built[name] = build_twin(root / name, name, {"max_tokens": 6} if name in GENERATORS else None)
    return built


def _adapter(spec_dir, model):
    from cytoreg.models.hf_generate import HFGenerator

    ad = HFGenerator(Catalog.load([spec_dir]).model(model))
    ad.load()
    return ad


def _longer(request):
    """The same request with more words in its text: a longer prompt, the same images."""
    from cytoreg.models.base import ChatRequest, Message, TextPart

    return ChatRequest([Message(m.role, [TextPart(p.text + " Basophil Eosinophil Lymphocyte")
                                         if isinstance(p, TextPart) else p for p in m.parts])
                        for m in request.messages], request.generation)


def _requests(spec_dir, setting, n=3):
    cat = Catalog.load([spec_dir])
    kind = TASK_KINDS.get("classification")(cat.task("twin-demo"))
    prep = kind.prepare()
    shots = kind.fewshot_examples(prep) if setting == "few_shot" else []
    return [kind.chat_request(s, setting, shots, {"max_tokens": 6}, 0) for s in prep.test[:n]], prep, kind


@pytest.mark.slow
@pytest.mark.parametrize("name", GENERATORS)
def test_generator_twin_runs_through_the_shipped_spec(name, twins, tmp_path):
    spec_dir, model = twins[name]
    twin = TWINS[name]
    if _missing(twin):  # idefics-80b ships in 8-bit: without bitsandbytes + CUDA the loader says what is missing
        with pytest.raises(ModelLoadError, match=rf"model '{model}'.*(bitsandbytes|CUDA|GPU)"):
            _adapter(spec_dir, model)
        pytest.skip(f"{name} as shipped needs {', '.join(twin.needs)} on CUDA")
    shipped = Catalog.load([]).model(name)
    ad = _adapter(spec_dir, model)
    assert ad.batch_size == shipped.get("execution")["batch_size"]
    limit = 2 * ad.batch_size + 1  # full batches and a short one
    rc, res, recs = run_eval(spec_dir, "twin-demo", model, tmp_path / "run", "--limit", str(limit))
    assert rc == 0
    evs = {e["setting"]: e for e in res["evaluations"]}
    assert set(evs) == {"zero_shot", "few_shot"}
    assert len(recs) == 2 * limit
    assert [r["error"] for r in recs if r.get("error")] == []
    assert all(isinstance(r["response"], str) for r in recs)
    n = max(ad.batch_size, 2)
    zero, few = _requests(spec_dir, "zero_shot", n)[0], _requests(spec_dir, "few_shot", n)[0]
    padded = [_longer(zero[0])] + zero[1:n]  # same image count, different lengths: left padding at work
    mixed = [few[0], _longer(zero[1])] + zero[2:n]  # different image counts: split into one pass per count
    for reqs in (zero, few, padded, mixed):
        assert_batched_equals_single(ad, reqs)
        texts = [r.text for r in ad.generate_batch(reqs)]
        assert texts == [ad.generate(r).text for r in reqs]


@pytest.mark.parametrize("name", [n for n in GENERATORS if not TWINS[n].needs])
def test_generator_twin_sees_the_image(name, twins):
    spec_dir, model = twins[name]
    ad = _adapter(spec_dir, model)
    for setting in ("zero_shot", "few_shot"):
        reqs, _, _ = _requests(spec_dir, setting, n=2)
        assert_image_changes_output(ad, reqs[0], reqs[1])


def test_mllama_prompt_is_the_instruct_template(twins):
    spec_dir, model = twins["llama-3.2-11b-vision"]
    ad = _adapter(spec_dir, model)
    reqs, prep, kind = _requests(spec_dir, "few_shot", n=2)
    prompt, images = ad._render(reqs[0])
    shots = kind.fewshot_examples(prep)
    assert len(images) == len(shots) + 1 == prompt.count("<|image|>")
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nThe cell_type in this")
    assert prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert "Cutting Knowledge Date" not in prompt  # the template drops the system block when images are present
    enc = ad._family.encode([ad._family.render(r) for r in reqs])
    tok = ad._processor.tokenizer
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert [int((row == bos).sum()) for row in enc["input_ids"]] == [1, 1]  # one BOS, not the template's + the tokenizer's
    # images grouped per request: [batch, images per request, tiles, 3, H, W]
    assert tuple(enc["pixel_values"].shape[:2]) == (2, len(shots) + 1)
    assert enc["input_ids"][0, 0] == tok.pad_token_id or enc["attention_mask"][0, 0] == 1  # left padding


def test_mllama_refuses_a_system_message_with_images_per_request(twins, tmp_path):
    from cytoreg.models.base import ChatRequest, Message, TextPart

    spec_dir, model = twins["llama-3.2-11b-vision"]
    ad = _adapter(spec_dir, model)
    reqs, _, _ = _requests(spec_dir, "zero_shot", n=2)
    bad = ChatRequest([Message("system", [TextPart("You are a haematologist.")])] + reqs[1].messages,
                      reqs[1].generation)
    out = ad.generate_batch([reqs[0], bad])
    assert out[0].error is None and isinstance(out[0].text, str)
    assert "refuses this request: Prompting with images is incompatible with system messages" in out[1].error


def test_idefics_prompt_is_the_model_card_format(twins):
    spec_dir, model = twins["idefics-9b"]
    ad = _adapter(spec_dir, model)
    reqs, prep, kind = _requests(spec_dir, "few_shot", n=2)
    items, images = ad._render(reqs[0])
    shots = kind.fewshot_examples(prep)
    # text before each image, as the task's few-shot spec says; images in order, one per example + the query
    from PIL import Image

    assert [isinstance(x, Image.Image) for x in items[:3]] == [False, True, False] and isinstance(items[0], str)
    assert items[0] == "User: The cell_type in this image is Band Neutrophil."
    assert items[-1] == "<end_of_utterance>\nAssistant:"
    assert [x for x in items if not isinstance(x, str)] == images and len(images) == len(shots) + 1
    enc = ad._family.encode([ad._family.render(r) for r in reqs])
    tok = ad._processor.tokenizer
    ids = enc["input_ids"][1][enc["attention_mask"][1].bool()]
    text = tok.decode(ids)
    img = "<fake_token_around_image><image><fake_token_around_image>"
    assert text.startswith(f"<s>User: The cell_type in this image is Band Neutrophil.{img}The cell_type in this image "
                           f"is Basophil.{img}")
    assert text.endswith(f"{img}<end_of_utterance>\nAssistant:") and text.count("<image>") == len(images)
    assert int((ids == tok.bos_token_id).sum()) == 1
    # each text attends to the image before it: the query text sees the last image only
    iam = enc["image_attention_mask"][1]
    assert iam.shape[-1] == len(images) and bool(iam[-1, -1]) and not bool(iam[-1, :-1].any())
    gk = ad._family.generate_kwargs()
    assert gk["eos_token_id"] == [tok.convert_tokens_to_ids("<end_of_utterance>"), tok.eos_token_id]
    assert gk["bad_words_ids"] == [[tok.convert_tokens_to_ids("<image>")],
                                   [tok.convert_tokens_to_ids("<fake_token_around_image>")]]


@pytest.mark.slow
@pytest.mark.parametrize("name", HIDDEN)
def test_hidden_twin_probe(name, twins, tmp_path):
    spec_dir, model = twins[name]
    twin = TWINS[name]
    from cytoreg.models.hf_hidden import HFHiddenStates

    if _missing(twin):
        with pytest.raises(ModelLoadError, match=rf"model '{model}'.*(bitsandbytes|CUDA|GPU)"):
            HFHiddenStates(Catalog.load([spec_dir]).model(model)).load()
        pytest.skip(f"{name} as shipped needs {', '.join(twin.needs)} on CUDA")
    rc, res, recs = run_eval(spec_dir, "twin-probe", model, tmp_path / "run")
    assert rc == 0
    keys = [f"probe:layer{layer}/{pool}" for layer in twin.params["layers"] for pool in ("mean", "last")]
    assert [e["setting"] for e in res["evaluations"]] == keys
    assert all(e["errors"] == 0 and e["probe"]["feature_dim"] == 32 for e in res["evaluations"])


def test_idefics_hidden_states_by_hand(twins):
    """Seed B's input ([image, prompt], no turn markers); layer k = hidden_states[k]; layer 0 already
    depends on the image; mean over the tokens that attend to the image; batched = alone."""
    from pathlib import Path

    from transformers import AutoModelForImageTextToText, AutoProcessor

    from cytoreg.models.hf_hidden import HFHiddenStates
    from cytoreg.tasks.samples import open_image

    spec_dir, model = twins["idefics-9b-hidden"]
    spec = Catalog.load([spec_dir]).model(model)
    assert spec.get("params")["prompt"] == "Question: What's on this image? Answer:"  # seed B's 'general'
    ad = HFHiddenStates(spec)
    ad.load()
    paths = sorted(Path(__file__).parents[1].joinpath("src/cytoreg/demo_data/pbc").rglob("*.jpg"))[::60][:3]
    ims = [open_image(p.read_bytes(), str(p)) for p in paths]
    got = ad.extract_batch(ims)
    folder = spec.get("params")["model"]
    proc, m = AutoProcessor.from_pretrained(folder), AutoModelForImageTextToText.from_pretrained(folder).eval()
    first = []
    for k, im in enumerate(ims):
        enc = proc(text=[[im, "Question: What's on this image? Answer:"]], return_tensors="pt")
        toks = proc.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
        assert toks[:4] == ["<s>", "<fake_token_around_image>", "<image>", "<fake_token_around_image>"]
        with torch.no_grad():
            hs = m(**enc, output_hidden_states=True).hidden_states
        assert len(hs) == 5
        sees = enc["image_attention_mask"][0].bool().any(-1)
        assert not bool(sees[0]) and bool(sees[2:].all())  # <s> and the first fake token come before the image
        for layer in (0, 2, 4):
            h = hs[layer][0]
            np.testing.assert_allclose(got[f"layer{layer}/mean"][k], h[sees].mean(0).numpy(), atol=1e-5)
            np.testing.assert_allclose(got[f"layer{layer}/last"][k], h[-1].numpy(), atol=1e-5)
        first.append(hs[0][0, -1])
        one = ad.extract_batch([im])
        for key, v in one.items():
            np.testing.assert_allclose(got[key][k], v[0], atol=1e-5)
    assert float((first[0] - first[1]).abs().max()) > 1e-4  # layer 0 is past the first cross-attention


def test_cross_attention_families_refuse_image_token_pooling(twins, tmp_path):
    from cytoreg.models.hf_hidden import HFHiddenStates

    spec_dir, _ = twins["idefics-9b-hidden"]
    (spec_dir / "bad.yaml").write_text("spec: model/v1\nname: bad-pool\nextends: idefics-9b-hidden-twin\n"
                                       "params: {pooling: [image_tokens]}\n")
    with pytest.raises(ModelLoadError, match="pooling 'image_tokens' does not apply .* gated cross-attention"):
        HFHiddenStates(Catalog.load([spec_dir]).model("bad-pool")).load()
    (spec_dir / "bad.yaml").unlink()


def test_a_generator_checkpoint_with_its_own_code_needs_trust_remote_code(tmp_path):
    """A config.json with auto_map under a spec without trust_remote_code is refused before loading:
    transformers would otherwise build its built-in class from the config (its answers, not the model's)."""
    import json

    spec_dir, name = build_twin(tmp_path, "qwen2.5-vl-7b", {"max_tokens": 4})
    folder = tmp_path / "qwen2.5-vl-7b"
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForImageTextToText": "modeling_custom.CustomVL"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError) as exc:
        _adapter(spec_dir, name)
    msg = str(exc.value)
    assert "ships its own model code" in msg and "modeling_custom.py" in msg and "trust_remote_code: true" in msg
