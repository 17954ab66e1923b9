"""Tiny random twins of the pathology encoders published in timm's hub layout (``config.json``
with ``architecture`` / ``model_args`` / ``pretrained_cfg`` + the weights file), written with
the keys timm's ``save_for_hf`` writes, so that ``local-dir:<folder>`` loads them through the same code path
as ``hf-hub:<repo>``. Each twin keeps the published architecture class and its structural
arguments (registers, SwiGLU, LayerScale, class-token layout) and only shrinks depth and width."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2}


@dataclass
class EncoderTwin:
    arch: str
    #: what the published config.json's model_args hold (the card passes the rest as kwargs)
    model_args: dict = field(default_factory=dict)
    #: the spec's model_kwargs that give the size (overridden by the twin spec)
    sized_kwargs: bool = False
    safetensors: bool = True


TWINS = {
    "uni": EncoderTwin("vit_large_patch16_224", safetensors=False),
    "uni2-h": EncoderTwin("vit_giant_patch14_224", sized_kwargs=True, safetensors=False),
    "virchow2": EncoderTwin("vit_huge_patch14_224", {"img_size": 224, "init_values": 1e-5, "mlp_ratio": 5.3375,
                                                      "global_pool": "", "dynamic_img_size": True,
                                                      "reg_tokens": 4, "no_embed_class": True}),
    "h-optimus-0": EncoderTwin("vit_giant_patch14_reg4_dinov2", {"img_size": 224}),
    "h-optimus-1": EncoderTwin("vit_giant_patch14_reg4_dinov2", {"img_size": 224}),
    "prov-gigapath": EncoderTwin("vit_giant_patch14_dinov2", {"img_size": 224, "in_chans": 3, "patch_size": 16,
                                                               "embed_dim": 1536, "depth": 40, "num_heads": 24,
                                                               "init_values": 1e-5, "mlp_ratio": 5.33334,
                                                               "num_classes": 0}, safetensors=False),
}


def spec_kwargs(spec) -> dict:
    from cytoreg.models.timm_features import resolve_class_kwargs

    return resolve_class_kwargs(dict(spec.get("params").get("model_kwargs") or {}), spec.name)


def save_twin(folder: Path, name: str, seed: int = 0):
    """Build the tiny twin of built-in spec ``name`` as the card builds the real one (spec kwargs +
    config.json's model_args), save it in the hub layout; returns the in-memory model."""
    import timm
    import torch
    from cytoreg.registry.catalog import Catalog

    twin = TWINS[name]
    spec = Catalog.load([]).model(name)
    args = dict(twin.model_args)
    args.update({k: v for k, v in TINY.items()})
    kwargs = {**args, **spec_kwargs(spec), "num_classes": 0}
    kwargs.update(TINY)
    torch.manual_seed(seed)
    model = timm.create_model(twin.arch, pretrained=False, **kwargs).eval()
    with torch.no_grad():  # visible LayerScale so blocks matter
        for n, p in model.named_parameters():
            if n.endswith("gamma"):
                p.fill_(0.5)
    pre = spec.get("params")["preprocess"]
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"architecture": twin.arch, "num_classes": 0, "num_features": model.num_features,
           "global_pool": args.get("global_pool", "token"), "model_args": args,
           "pretrained_cfg": {"tag": name, "custom_load": False, "input_size": [3, 224, 224],
                              "fixed_input_size": not args.get("dynamic_img_size", False),
                              "interpolation": pre.get("interpolation", "bicubic"), "crop_pct": 1.0,
                              "crop_mode": "center", "mean": pre["mean"], "std": pre["std"], "num_classes": 0,
                              "pool_size": None, "first_conv": "patch_embed.proj", "classifier": "head"}}
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    if twin.safetensors:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    else:
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return model


def twin_spec(name: str, folder: Path) -> str:
    params = {"pretrained": f"local-dir:{folder}"}
    if TWINS[name].sized_kwargs:
        params["model_kwargs"] = dict(TINY)
    return (f"spec: model/v1\nname: {name}-twin\nextends: {name}\nparams: {json.dumps(params)}\n"
            f"execution: {{batch_size: 8, workers: 0}}\n")
