"""The test pattern for every built-in local VLM spec (adapters ``hf`` and ``hf_hidden``): build a
tiny random twin of the checkpoint's architecture (``tiny_vlm``), load it through the built-in
spec *as shipped* (``extends`` + a local ``params.model``; batch size, dtype, device_map and
prompt untouched), and check what a real run depends on.

A new ``hf`` / ``hf_hidden`` spec registers its twin builder in :data:`TWINS`;
``test_every_local_vlm_spec_has_a_twin`` fails until it does, and the parametrised tests in
``test_hf_twins.py`` then run it through the same checks:

- ``cytoreg eval`` zero-shot and few-shot (generators) or a probe (hidden states): exit 0 and no
  error record;
- batched = one-by-one: the last-position logits of a left-padded batch equal each request run
  alone (``assert_batched_equals_single``);
- the image changes the output (``assert_image_changes_output``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tiny_vlm import save_tiny_idefics, save_tiny_mllama
from tiny_vlm_zoo import (save_tiny_gemma3, save_tiny_internvl, save_tiny_qwen3vl, save_tiny_qwen25vl,
                          save_tiny_smolvlm2)


@dataclass
class Twin:
    builder: Callable[..., Path]
    kwargs: dict = field(default_factory=dict)
    #: spec params a twin must change beyond the folder: only what depends on the model's size
    params: dict = field(default_factory=dict)
    #: packages the shipped spec needs beyond transformers (the twin is skipped, with the
    #: loader's error checked, where they are missing)
    needs: tuple = ()


TWINS: dict[str, Twin] = {
    "medgemma-4b": Twin(save_tiny_gemma3),
    "medgemma-27b": Twin(save_tiny_gemma3),
    "qwen2.5-vl-7b": Twin(save_tiny_qwen25vl),
    "lingshu-7b": Twin(save_tiny_qwen25vl),
    "qwen3-vl-8b": Twin(save_tiny_qwen3vl),
    "internvl3-8b": Twin(save_tiny_internvl),
    "smolvlm2-2.2b": Twin(save_tiny_smolvlm2),
    "llama-3.2-11b-vision": Twin(save_tiny_mllama),
    "idefics-9b": Twin(save_tiny_idefics),
    "idefics-80b": Twin(save_tiny_idefics, needs=("bitsandbytes",)),
    "idefics-9b-hidden": Twin(save_tiny_idefics, {"instruct": False}, {"layers": [0, 2, 4]}),
    "idefics-80b-hidden": Twin(save_tiny_idefics, {"instruct": False}, {"layers": [0, 2, 4]},
                               needs=("bitsandbytes",)),
}

TASK = ("spec: task/v1\nname: twin-demo\nextends: demo\nsampling: {test_per_class: 1}\n")
PROBE_TASK = ("spec: task/v1\nname: twin-probe\nkind: probe\nextends: demo\n"
              "sampling: {seed: 42, test_per_class: 3, train_per_class: 4, val_per_class: 1}\n")


def local_vlm_specs() -> dict[str, str]:
    """Built-in model specs run by transformers locally: name → adapter."""
    from cytoreg.registry.catalog import Catalog

    cat = Catalog.load([])
    out = {}
    for entry in cat.models:
        spec = entry.target
        if entry.origin == "built-in" and spec.get("adapter") in ("hf", "hf_hidden"):
            out[entry.name] = spec.get("adapter")
    return out


def demo_words() -> str:
    """Every word the demo task's prompts and labels use (the twin's tokenizer is trained on them)."""
    from cytoreg.registry.catalog import Catalog

    demo = Catalog.load([]).task("demo")
    p = demo.get("prompts")
    return " ".join([p["zero_shot"], p["few_shot"]["example"], " ".join(demo.get("labels")),
                     "Question: What's on this image? Answer:"])


def build_twin(root: Path, spec_name: str, generation: dict | None = None) -> tuple[Path, str]:
    """The twin's weights under ``root/<spec>`` and a spec folder holding ``<spec>-twin`` (extends the
    built-in spec, local ``params.model``) and the small demo tasks. Returns (spec folder, model name)."""
    twin = TWINS[spec_name]
    folder = twin.builder(root / spec_name, demo_words(), **twin.kwargs)
    d = root / "specs"
    d.mkdir(parents=True, exist_ok=True)
    params = {"model": str(folder), **twin.params}
    text = (f"spec: model/v1\nname: {spec_name}-twin\nextends: {spec_name}\n"
            f"params: {json.dumps(params)}\n")
    if generation:
        text += f"generation: {json.dumps(generation)}\n"
    (d / f"{spec_name}-twin.yaml").write_text(text)
    (d / "twin-demo.yaml").write_text(TASK)
    (d / "twin-probe.yaml").write_text(PROBE_TASK)
    return d, f"{spec_name}-twin"


def run_eval(spec_dir: Path, task: str, model: str, out: Path, *extra: str) -> tuple[int, dict, list[dict]]:
    """``cytoreg eval`` in-process: (exit code, results.json, samples.jsonl records)."""
    from cytoreg.cli import main

    rc = main(["eval", "--tasks", task, "--models", model, "-o", str(out), "--include", str(spec_dir),
               "--bootstrap", "10", "--no-progress", *extra])
    res = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    samples = out / "samples.jsonl"
    recs = [json.loads(x) for x in samples.read_text().splitlines()] if samples.exists() else []
    return rc, res, recs


def last_logits(adapter, requests) -> "object":
    """Logits at the last position of each request, run as one left-padded batch."""
    import torch

    from cytoreg.models.hf_generate import image_count_groups, to_device

    fam = adapter._family
    rendered = [fam.render(r) for r in requests]
    out = [None] * len(requests)
    for ks in image_count_groups(rendered):  # as the adapter batches them
        inputs = to_device(fam.encode([rendered[k] for k in ks]), adapter._device, adapter._model)
        with torch.inference_mode():
            logits = adapter._model(**inputs).logits[:, -1].float().cpu()
        for j, k in enumerate(ks):
            out[k] = logits[j]
    return torch.stack(out)


def assert_batched_equals_single(adapter, requests, atol: float = 1e-5) -> float:
    """Left-padded batch vs each request alone, last-position logits; returns the max difference."""
    import torch

    batched = last_logits(adapter, requests)
    single = torch.cat([last_logits(adapter, [r]) for r in requests])
    diff = float((batched - single).abs().max())
    assert diff <= atol, f"batched and one-by-one logits differ by {diff}"
    return diff


GATES = ("cross_attn_attn_gate", "cross_attn_mlp_gate", "alpha_cross_attn", "alpha_dense")


def assert_image_changes_output(adapter, request_a, request_b, min_diff: float = 1e-4) -> float:
    """Two requests with the same text and different images give different next-token logits; with
    the cross-attention gates closed (a random model's initial state) the same check gives ~0."""
    import torch

    la, lb = last_logits(adapter, [request_a]), last_logits(adapter, [request_b])
    diff = float((la - lb).abs().max())
    assert diff > min_diff, f"the image does not change the output (max logit difference {diff})"
    gates = {n: p.detach().clone() for n, p in adapter._model.named_parameters() if n.split(".")[-1] in GATES}
    if gates:
        params = dict(adapter._model.named_parameters())
        with torch.no_grad():
            for n in gates:
                params[n].zero_()
        try:
            closed = float((last_logits(adapter, [request_a]) - last_logits(adapter, [request_b])).abs().max())
        finally:
            with torch.no_grad():
                for n, v in gates.items():
                    params[n].copy_(v)
        assert closed < min_diff / 10, f"closed gates still let the image through ({closed})"
    return diff
