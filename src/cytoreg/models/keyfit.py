"""Does a checkpoint file's state dict fit the architecture the spec builds? Answered without
reading tensors: the file's keys and shapes come as meta tensors (a safetensors header; a torch
zip file loaded with ``map_location="meta"``, weights-only), the model is built on the meta
device, and the spec's key handling (``state_dict`` nesting, ``module.`` prefixes,
``checkpoint_prefix``, timm's / open_clip's own conversions) runs as the adapter's load runs it.
:mod:`cytoreg.models.check` reports the result; the open_clip adapter words a failed load with it."""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


@dataclass
class Fit:
    """Keys the architecture has that the file lacks, keys of the file nothing takes, and tensors
    of the wrong shape."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shapes)

    def words(self) -> str:
        """``N missing (e.g. a, b, c), M unexpected (e.g. …)``: the parts that are not empty."""
        parts = []
        for n, what in ((self.missing, "missing"), (self.unexpected, "unexpected"), (self.shapes, "of the wrong shape")):
            if n:
                parts.append(f"{len(n)} {what} (e.g. {', '.join(n[:3])})")
        return ", ".join(parts)


def meta_state(path: Path) -> Any:
    """The file's object with every tensor on the meta device (shapes and dtypes, no data)."""
    import torch

    if path.suffix == ".safetensors":
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        return {k: torch.empty(v["shape"], dtype=getattr(torch, _DTYPES.get(v["dtype"], "float32")), device="meta")
                for k, v in header.items() if k != "__metadata__"}
    try:
        return torch.load(path, map_location="meta", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) file cannot be memory-mapped
        return torch.load(path, map_location="meta", weights_only=True)


def _compare(model: Any, sd: dict) -> Fit:
    """``load_state_dict(strict=False)`` of meta tensors into a meta model, shape mismatches collected."""
    own = model.state_dict()
    wrong = [k for k, v in sd.items() if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in wrong]
    missing, unexpected = model.load_state_dict({k: v for k, v in sd.items() if k not in wrong}, strict=False,
                                                assign=True)
    return Fit(sorted(set(missing) - set(wrong)), sorted(unexpected), shapes)


def _strip_module(sd: dict) -> dict:
    if sd and next(iter(sd)).startswith("module."):
        return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
    return sd


def timm_fit(params: dict, path: Path, where: str = "") -> Fit:
    """The timm adapter's reading of ``path`` (TimmFeatures._load_checkpoint) against ``params.arch``
    built on the meta device; the attentional pooler's keys (``pooling: attn_pool``) are accepted
    under their prefixes, anything else outside ``checkpoint_prefix`` is unexpected."""
    import timm
    import torch

    from cytoreg.models.timm_features import dinobloom_state_dict, resolve_class_kwargs

    kwargs = resolve_class_kwargs(dict(params.get("model_kwargs") or {}, num_classes=0), where)
    if "img_size" in params or "img_size" not in kwargs:
        kwargs["img_size"] = int(params.get("img_size", 224))
    with torch.device("meta"):
        model = timm.create_model(params["arch"], pretrained=False, **kwargs)
    sd = meta_state(path)
    if not isinstance(sd, dict):
        return Fit(unexpected=[f"(the file holds a {type(sd).__name__}, not a state dict)"])
    if params.get("checkpoint_format", "dinobloom") == "dinobloom":
        sd = dinobloom_state_dict(sd)
    elif isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    prefix, rest = params.get("checkpoint_prefix"), []
    if prefix:
        rest = [k for k in sd if not k.startswith(prefix)]
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if params.get("pooling") == "attn_pool":
        cfg = params.get("attn_pool") or {}
        rest = [k for k in rest if not k.startswith((cfg.get("prefix", "attn_pool_contrast."),
                                                     cfg.get("norm", "ln_contrast.")))]
    resize = params.get("pos_embed_resize")
    if resize and "pos_embed" in sd:  # resized at load to the model's grid: the shape is the model's
        sd["pos_embed"] = torch.empty(model.pos_embed.shape, device="meta")
    try:
        from timm.models.vision_transformer import checkpoint_filter_fn

        if isinstance(model, timm.models.vision_transformer.VisionTransformer):
            sd = checkpoint_filter_fn(sd, model)
    except Exception:  # noqa: BLE001 - a conversion that needs data: compare the keys as they are
        pass
    fit = _compare(model, sd)
    fit.unexpected = sorted(fit.unexpected + rest)
    return fit


def open_clip_fit(model_name: str, path: Path) -> Fit:
    """open_clip's reading of a checkpoint file (``factory.load_checkpoint``: ``state_dict``
    nesting, ``module.`` prefixes, third-party and old text-tower layouts) against ``model_name``
    built on the meta device."""
    import open_clip
    import torch
    from open_clip import factory

    with torch.device("meta"):
        model = open_clip.create_model(model_name, pretrained=None, device="meta")
    sd = meta_state(path)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd:
        return Fit(unexpected=[f"(the file holds {'no key' if isinstance(sd, dict) else type(sd).__name__}, "
                               "not a state dict)"])
    sd = _strip_module(sd)
    try:
        sd = factory.convert_state_dict(model, sd)
    except Exception:  # noqa: BLE001 - a conversion that needs data: compare the keys as they are
        pass
    if "positional_embedding" in sd and not hasattr(model, "positional_embedding"):
        sd = factory.convert_to_custom_text_state_dict(sd)
    for key in ("logit_scale", "logit_bias"):
        mine = getattr(model, key, None)
        if key in sd and mine is not None and hasattr(sd[key], "ndim") and sd[key].ndim != mine.ndim:
            sd[key] = torch.empty(mine.shape, device="meta")
    if "logit_bias" not in sd and getattr(model, "logit_bias", None) is not None:
        sd["logit_bias"] = torch.empty(model.logit_bias.shape, device="meta")
    sd.pop("text.transformer.embeddings.position_ids", None)
    for key in ("visual.positional_embedding", "positional_embedding"):  # resized at load (a grid the
        if key in sd and key in model.state_dict():  # adapter's own check names): the model's shape
            sd[key] = torch.empty(model.state_dict()[key].shape, device="meta")
    return _compare(model, sd)
