"""The ``hf`` adapter on a tiny LLaVA created from a config, through AutoProcessor +
AutoModelForImageTextToText exactly as a hub checkpoint loads."""
import json

import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.torch

from tiny_vlm import save_tiny_llava  # noqa: E402
from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.errors import ModelLoadError  # noqa: E402
from cytoreg.registry.builtins import TASK_KINDS  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm")
    demo = Catalog.load([]).task("demo")
    prompts = demo.get("prompts")
    save_tiny_llava(root / "llava", extra_text=prompts["zero_shot"] + " " + prompts["few_shot"]["example"]
                    + " " + " ".join(demo.get("labels")))
    d = root / "specs"
    d.mkdir()
    (d / "m.yaml").write_text(f"spec: model/v1\nname: tiny-llava\nadapter: hf\nparams: {{model: '{root / 'llava'}'}}\n"
                              "generation: {max_tokens: 4, temperature: 0}\nexecution: {batch_size: 4}\n")
    (d / "t.yaml").write_text("spec: task/v1\nname: demo-small\nextends: demo\nsampling: {test_per_class: 2}\n")
    return d


def test_generation_batched_equals_one_by_one(tiny):
    from cytoreg.models.hf_generate import HFGenerator

    cat = Catalog.load([tiny])
    adapter = HFGenerator(cat.model("tiny-llava"))
    kind = TASK_KINDS.get("classification")(cat.task("demo-small"))
    prep = kind.prepare()
    reqs = [kind.chat_request(s, "zero_shot", [], {"max_tokens": 4}, 0) for s in prep.test[:3]]
    batched = adapter.generate_batch(reqs)
    single = [adapter.generate(r) for r in reqs]
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(isinstance(r.text, str) and r.usage["prompt_tokens"] > 16 for r in batched)
    # the image placeholder became the image tokens: prompt tokens = text tokens + 16 image patches + CLS
    prompt, images = adapter._render(reqs[0])
    assert prompt.startswith("user: Consider the input image.") and prompt.endswith("<image> assistant: ")
    assert len(images) == 1


def test_few_shot_request_interleaves_images(tiny):
    from cytoreg.models.hf_generate import HFGenerator

    cat = Catalog.load([tiny])
    adapter = HFGenerator(cat.model("tiny-llava"))
    adapter.load()
    kind = TASK_KINDS.get("classification")(cat.task("demo-small"))
    prep = kind.prepare()
    shots = kind.fewshot_examples(prep)
    prompt, images = adapter._render(kind.chat_request(prep.test[0], "few_shot", shots, {}, 0))
    assert len(images) == len(shots) + 1 == 12
    assert prompt.count("<image>") == 12
    assert prompt.index("The cell_type in this image is Band Neutrophil.") < prompt.index("<image>")


def test_full_eval_on_demo(tiny, tmp_path):
    out = tmp_path / "run"
    res = evaluate(EvalConfig(["demo-small"], ["tiny-llava"], output=out, include=[str(tiny)], progress=False,
                              bootstrap=0))
    evs = {e["setting"]: e for e in res["evaluations"]}
    assert set(evs) == {"zero_shot", "few_shot"} and evs["zero_shot"]["n"] == 22
    assert evs["zero_shot"]["errors"] == 0
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert all(isinstance(r["response"], str) for r in recs)
    assert res["evaluations"][0]["usage"]["prompt_tokens"] > 0
    again = evaluate(EvalConfig(["demo-small"], ["tiny-llava"], output=out, include=[str(tiny)], progress=False,
                                bootstrap=0))
    assert [e["requests"]["cached"] for e in again["evaluations"]] == [22, 22]


def test_missing_model_error(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "m.yaml").write_text("spec: model/v1\nname: nope\nadapter: hf\nparams: {model: nobody/no-such-vlm}\n")
    from cytoreg.models.hf_generate import HFGenerator

    with pytest.raises(ModelLoadError, match=r"cannot load nobody/no-such-vlm .*models--nobody--no-such-vlm"):
        HFGenerator(Catalog.load([d]).model("nope")).load()
