"""LoRA supervised fine-tuning of ``hf`` models with TRL's ``SFTTrainer`` and peft, on the same
examples as the OpenAI route (the evaluation's zero-shot request, the label as the answer; loss
on the answer only), and loading the adapter for evaluation (``params.lora``).

Each adapter goes to ``DIR/lora/<model>-<task>-n<N>-<hash>/`` (peft's safetensors files and
``cytoreg.json``), written to a temporary folder and renamed when complete, so a killed run
leaves no half adapter and a rerun skips every adapter already trained on the same data."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable

from cytoreg.errors import ModelLoadError
from cytoreg.finetune.data import Subset, TrainingData, request_for

DEFAULTS = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear", "learning_rate": 2e-4,
            "gradient_accumulation_steps": 1}


def _need(name: str, model: str):
    from importlib import import_module

    try:
        return import_module(name)
    except ImportError as exc:
        raise ModelLoadError(f"LoRA fine-tuning of '{model}' needs {name}: pip install 'cytoreg[finetune]' "
                             f"({exc})") from exc


def chat_example(data: TrainingData, sample, generation: dict) -> dict:
    """Prompt (the evaluation's messages, images as placeholders), completion (the label), images."""
    from cytoreg.images import open_image
    from cytoreg.models.base import ImagePart, TextPart

    req = request_for(data, sample, generation)
    prompt, images = [], []
    for m in req.messages:
        content = []
        for p in m.parts:
            if isinstance(p, TextPart):
                content.append({"type": "text", "text": p.text})
            elif isinstance(p, ImagePart):
                content.append({"type": "image"})
                images.append(open_image(p.data(), str(p.image)))
        prompt.append({"role": m.role, "content": content})
    req.release()
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": [{"type": "text",
                                                                               "text": sample.label}]}],
            "images": images}


def settings(mspec: Any) -> dict:
    ft = dict(mspec.get("finetune") or {})
    return {**DEFAULTS, **(ft.get("lora") or {}), "epochs": ft.get("epochs", 3), "batch_size": ft.get("batch_size", 4),
            "seed": ft.get("seed", 0)}


def data_key(mspec: Any, sub: Subset, cfg: dict) -> str:
    from cytoreg.tasks.samples import sha256

    rows = [[s.id, s.label, sha256(s.image.read_bytes())] for s in sub.samples]
    payload = json.dumps({"model": mspec.get("params"), "rows": rows, "settings": cfg}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def train_all(mspec: Any, data: TrainingData, subs: list[Subset], out: Path, state, device: str | None,
              log: Callable[[str], None]) -> dict[int, Path]:
    """n -> adapter folder; adapters already trained on the same data and settings are kept."""
    cfg = settings(mspec)
    gen = {k: v for k, v in (mspec.get("generation") or {}).items() if k != "tries"}
    paths = {}
    for sub in subs:
        key = data_key(mspec, sub, cfg)
        path = out / "lora" / f"{mspec.name}-{data.task}-n{sub.n}-{key[:12]}"
        if (path / "cytoreg.json").exists():
            log(f"{mspec.name} n={sub.n}: adapter {path} already trained")
        else:
            log(f"{mspec.name} n={sub.n}: LoRA on {len(sub.samples)} examples")
            meta = train_one(mspec, [chat_example(data, s, gen) for s in sub.samples], path, cfg, device)
            state.adapters[f"{mspec.name}|{data.task}|n={sub.n}"] = {"path": str(path), "data_sha256": key, **meta}
            state.save()
        paths[sub.n] = path
    return paths


def train_one(mspec: Any, examples: list[dict], path: Path, cfg: dict, device: str | None) -> dict:
    torch = _need("torch", mspec.name)
    transformers = _need("transformers", mspec.name)
    datasets = _need("datasets", mspec.name)
    peft = _need("peft", mspec.name)
    trl = _need("trl", mspec.name)
    from cytoreg.models.weights import hub_missing, pick_device

    params = dict(mspec.get("params") or {})
    if params.get("load_in_8bit"):
        raise ModelLoadError(f"model '{mspec.name}' loads in 8 bits (params.load_in_8bit); LoRA training here runs "
                             f"on bf16 weights. Fine-tune a spec without load_in_8bit (needs the GPU memory for the "
                             f"bf16 model), then evaluate the adapter with either")
    dev = pick_device(device)
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32  # bf16 on GPU, as the evaluation loads it
    kwargs: dict = {"trust_remote_code": bool(mspec.get("trust_remote_code", False))}
    if params.get("revision"):
        kwargs["revision"] = params["revision"]
    try:
        processor = transformers.AutoProcessor.from_pretrained(params["model"], **kwargs)
        model = transformers.AutoModelForImageTextToText.from_pretrained(params["model"], dtype=dtype, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise hub_missing(mspec.name, params["model"], " for LoRA fine-tuning", params.get("download_hint"),
                          exc) from exc
    if params.get("chat_template"):
        processor.chat_template = params["chat_template"]
    tok = getattr(processor, "tokenizer", None)
    if tok is not None and tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    args = trl.SFTConfig(
        output_dir=str(tmp / "trainer"), num_train_epochs=float(cfg["epochs"]) if cfg["epochs"] != "auto" else 3.0,
        max_steps=int(cfg.get("max_steps") or -1), per_device_train_batch_size=int(cfg["batch_size"])
        if cfg["batch_size"] != "auto" else 4, gradient_accumulation_steps=int(cfg["gradient_accumulation_steps"]),
        learning_rate=float(cfg["learning_rate"]), seed=int(cfg["seed"]), bf16=dev == "cuda", use_cpu=dev == "cpu",
        save_strategy="no", report_to=[], logging_steps=1, max_length=None, completion_only_loss=True,
        disable_tqdm=True, dataloader_num_workers=0, log_level="warning")
    lora = peft.LoraConfig(r=int(cfg["r"]), lora_alpha=float(cfg["alpha"]), lora_dropout=float(cfg["dropout"]),
                           target_modules=cfg["target_modules"], task_type="CAUSAL_LM")
    ds = datasets.Dataset.from_list(examples)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=processor, peft_config=lora)
    trainer.remove_callback(transformers.PrinterCallback)  # the losses go to cytoreg.json instead of stdout
    result = trainer.train()
    losses = [round(float(x["loss"]), 6) for x in trainer.state.log_history if "loss" in x]
    trainer.model.save_pretrained(str(tmp))  # adapter_config.json + adapter_model.safetensors
    meta = {"examples": len(examples), "steps": int(result.global_step), "train_loss": float(result.training_loss),
            "losses": losses,
            "device": dev, "dtype": str(dtype).replace("torch.", ""), "settings": cfg}
    (tmp / "cytoreg.json").write_text(json.dumps(meta, indent=2, default=str))
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return meta


def with_adapter(model: Any, params: dict, name: str, where: Any) -> Any:
    """The model with the LoRA adapter of ``params.lora`` applied (merged unless 8-bit), else unchanged."""
    path = params.get("lora")
    if not path:
        return model
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").exists():
        raise ModelLoadError(f"model '{name}': params.lora {folder} holds no peft adapter (adapter_config.json); "
                             f"train it with `cytoreg finetune`, or fix the path in {where}")
    peft = _need("peft", name)
    model = peft.PeftModel.from_pretrained(model, str(folder))  # safetensors: no pickle
    return model if params.get("load_in_8bit") else model.merge_and_unload()
