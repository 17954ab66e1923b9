"""LoRA for open VLMs on a tiny LLaVA twin (CPU, a few steps): TRL's SFTTrainer + peft train on
the same examples as the OpenAI route, the adapter is saved under DIR/lora and evaluated through
the hf adapter with params.lora; its answers differ from the base model's and equal a manual
peft load; a rerun trains nothing; a missing adapter is a clear error."""
import json

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("trl")

from tiny_vlm import save_tiny_llava  # noqa: E402
from cytoreg.errors import ModelLoadError  # noqa: E402
from cytoreg.finetune.run import FinetuneConfig, run  # noqa: E402
from cytoreg.registry.builtins import TASK_KINDS  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

TASK = ("spec: task/v1\nname: demo-ft\nkind: probe\nextends: demo\n"
        "sampling: {seed: 42, test_per_class: 1, train_per_class: 2, val_per_class: 0, fewshot_per_class: 1,"
        " order: [fewshot, test, train]}\nprobe: {method: logistic, seed: 3}\n")


@pytest.mark.slow
def test_lora_trains_saves_and_evaluates_with_the_adapter(tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    d = tmp_path / "specs"
    d.mkdir()
    (d / "task.yaml").write_text(TASK)
    kind = TASK_KINDS.get("probe")(Catalog.load([str(d)]).task("demo-ft"))
    llava = save_tiny_llava(tmp_path / "llava", extra_text=kind.prompts["zero_shot"] + " " + " ".join(kind.labels))
    (d / "tiny.yaml").write_text(
        f"spec: model/v1\nname: tiny\nadapter: hf\nparams: {{model: '{llava}'}}\n"
        "generation: {temperature: 0, max_tokens: 4}\nexecution: {batch_size: 4}\n"
        "finetune: {epochs: 1, batch_size: 4, lora: {r: 8, alpha: 16, learning_rate: 0.1, max_steps: 6}}\n")
    out = tmp_path / "run"
    logs: list[str] = []
    cfg = FinetuneConfig(task="demo-ft", models=["tiny"], ns=[0, 1], output=out, include=[str(d)], device="cpu",
                         progress=False, bootstrap=20)
    res = run(cfg, logs.append)
    assert res["finetuned"] == {"tiny": {0: "tiny", 1: "tiny-ft-demo-ft-n1"}}
    [adapter] = list((out / "lora").iterdir())
    assert adapter.name.startswith("tiny-demo-ft-n1-")
    assert {"adapter_config.json", "adapter_model.safetensors", "cytoreg.json"} <= {p.name for p in adapter.iterdir()}
    meta = json.loads((adapter / "cytoreg.json").read_text())
    assert meta["examples"] == 11 and meta["steps"] == 6 and len(meta["losses"]) == 6
    spec = (out / "specs" / "tiny-ft-demo-ft-n1.yaml").read_text()
    assert "extends: tiny" in spec and f"lora: {adapter.resolve()}" in spec
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    base = {r["id"]: r["response"] for r in rows if r["model"] == "tiny"}
    tuned = {r["id"]: r["response"] for r in rows if r["model"] == "tiny-ft-demo-ft-n1"}
    assert base.keys() == tuned.keys() and len(base) == 11
    assert sum(base[i] != tuned[i] for i in base) >= 1  # the adapter changes the answers
    # the recorded answer equals a manual peft load of the saved adapter on the base model
    from peft import PeftModel

    first = kind.prepare().test[0]
    proc = AutoProcessor.from_pretrained(str(llava))
    proc.tokenizer.padding_side = "left"
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(str(llava)), str(adapter)).eval()
    from cytoreg.tasks.samples import open_image

    msgs = [{"role": "user", "content": [{"type": "text", "text": kind.prompts["zero_shot"]}, {"type": "image"}]}]
    prompt = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    inputs = proc(text=[prompt], images=[open_image(first.image.read_bytes())], return_tensors="pt", padding=True)
    with torch.inference_mode():
        gen = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    text = proc.batch_decode(gen[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()
    assert tuned[first.id] == text
    # a rerun trains nothing and generates nothing (cached)
    logs.clear()
    again = run(cfg, logs.append)
    assert any("already trained" in m for m in logs)
    assert all(e["requests"]["sent"] == 0 for e in again["results"]["evaluations"])


def test_missing_adapter_is_a_clear_error(tmp_path):
    from cytoreg.finetune.lora import with_adapter

    with pytest.raises(ModelLoadError, match=r"model 'm': params.lora .*nowhere holds no peft adapter .*cytoreg "
                                             r"finetune.*spec.yaml"):
        with_adapter(object(), {"lora": str(tmp_path / "nowhere")}, "m", "spec.yaml")
    sentinel = object()
    assert with_adapter(sentinel, {}, "m", "spec.yaml") is sentinel
