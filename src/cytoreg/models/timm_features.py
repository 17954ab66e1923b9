"""Frozen vision encoders through timm: DINOv2 (``vit_*_patch14_dinov2``, hub weights ``timm/…``),
DinoBloom (the same architecture + the published ``DinoBloom-{S,B,L,G}.pth``, whose ``teacher``
state dict is filtered and converted as DinoBloom's own loader does, then loaded with
``weights_only=True``), and the pathology encoders published in timm's hub layout (``config.json``
+ weights; UNI, UNI2-h, Virchow2, H-optimus, Prov-GigaPath), loaded by ``hf-hub:<repo>`` or
``local-dir:<folder>`` with the model card's ``timm.create_model`` arguments.

Features: ``cls`` is the CLS token after the final norm (``model(x)`` of a token-pooled ViT);
``cls+mean`` concatenates it with the mean of the patch tokens, register tokens excluded
(Virchow2's published embedding); optionally the CLS / mean patch token of chosen blocks for
layer-wise probes. Preprocessing is the spec's ``preprocess`` (the model card's size, crop,
interpolation, mean/std), or DinoBloom's (resize to ``img_size``, ImageNet mean/std)."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import FeatureExtractor
from cytoreg.models.weights import file_identity, pick_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: model_kwargs values that name a class: only these modules may be named (``timm.layers.SwiGLUPacked``)
CLASS_KWARGS = ("mlp_layer", "act_layer", "norm_layer", "embed_layer", "block_fn")
CLASS_MODULES = ("timm.layers", "torch.nn")

PREPROCESS_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["resize", "mean", "std"],
    "description": "the model card's preprocessing: Resize(resize) [shorter side, or (resize, resize) with "
                   "square: true] -> CenterCrop(crop) -> ToTensor -> Normalize(mean, std)",
    "properties": {
        "resize": {"type": "integer", "minimum": 1},
        "square": {"type": "boolean", "description": "resize to resize x resize instead of the shorter side"},
        "crop": {"type": ["integer", "null"], "minimum": 1},
        "interpolation": {"enum": ["bilinear", "bicubic", "nearest", "lanczos"]},
        "mean": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
        "std": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
    },
}


def build_transform(preprocess: dict):
    """The spec's ``preprocess`` as a torchvision pipeline (what the model cards write)."""
    from torchvision import transforms

    mode = getattr(transforms.InterpolationMode, preprocess.get("interpolation", "bilinear").upper())
    size = int(preprocess["resize"])
    steps = [transforms.Resize((size, size) if preprocess.get("square") else size, interpolation=mode)]
    if preprocess.get("crop"):
        steps.append(transforms.CenterCrop(int(preprocess["crop"])))
    steps += [transforms.ToTensor(), transforms.Normalize(tuple(preprocess["mean"]), tuple(preprocess["std"]))]
    return transforms.Compose(steps)


def resolve_class_kwargs(kwargs: dict, where: str) -> dict:
    """``mlp_layer: timm.layers.SwiGLUPacked`` → the class; only names under :data:`CLASS_MODULES`."""
    out = dict(kwargs)
    for key in CLASS_KWARGS:
        val = out.get(key)
        if not isinstance(val, str) or "." not in val:
            continue  # timm takes act_layer names ("silu") itself
        module, _, attr = val.rpartition(".")
        if not module.startswith(CLASS_MODULES):
            raise ModelLoadError(f"{where}: params.model_kwargs.{key} = {val!r}: only classes from "
                                 f"{', '.join(CLASS_MODULES)} can be named")
        try:
            out[key] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ModelLoadError(f"{where}: params.model_kwargs.{key} = {val!r} does not exist in the installed "
                                 f"timm/torch ({exc})") from exc
    return out


def dinobloom_state_dict(ckpt: dict) -> dict:
    """DinoBloom's checkpoint → a backbone state dict: take ``teacher``, drop the DINO/iBOT heads,
    strip ``backbone.`` (``get_dino_finetuned_downloaded`` in the DinoBloom repo)."""
    sd = ckpt.get("teacher", ckpt)
    return {k.replace("backbone.", "", 1): v for k, v in sd.items() if "dino_head" not in k and "ibot_head" not in k}


class TimmFeatures(FeatureExtractor):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["arch"],
        "properties": {
            "arch": {"type": "string", "description": "timm model name, e.g. vit_small_patch14_dinov2"},
            "pretrained": {"type": "string",
                           "description": "hf-hub:<repo>, local-dir:<folder> (timm's hub layout: config.json + weights) "
                                          "or a timm pretrained tag (e.g. lvd142m)"},
            "checkpoint": {"type": "string", "description": "path of a .pth/.pt/.safetensors checkpoint"},
            "checkpoint_env": {"type": "string", "description": "environment variable holding that path"},
            "checkpoint_format": {"enum": ["dinobloom", "state_dict"], "description": "how to read the checkpoint"},
            "img_size": {"type": "integer", "minimum": 14},
            "model_kwargs": {"type": "object", "description": "extra timm.create_model arguments (depth, embed_dim, ...)"},
            "preprocess": PREPROCESS_SCHEMA,
            "pooling": {"enum": ["cls", "cls+mean"],
                        "description": "cls: CLS after the final norm; cls+mean: CLS ⊕ mean of the patch tokens "
                                       "(register tokens excluded)"},
            "layers": {"type": "array", "items": {"type": "integer"},
                       "description": "block indices (0-based) whose CLS and mean patch tokens are also returned"},
            "download_hint": {"type": "string"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self._model = None

    def _checkpoint(self) -> Path | None:
        raw = self.params.get("checkpoint") or (os.environ.get(self.params["checkpoint_env"])
                                                if self.params.get("checkpoint_env") else None)
        if raw is None:
            if self.params.get("checkpoint_env") and not self.params.get("pretrained"):
                raise ModelLoadError(
                    f"model '{self.name}': set {self.params['checkpoint_env']} to the checkpoint file. "
                    f"{self.params.get('download_hint', '')} (spec {self.spec.path})")
            return None
        path = Path(os.path.expandvars(raw)).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"model '{self.name}': checkpoint {path} does not exist. "
                                 f"{self.params.get('download_hint', '')} (spec {self.spec.path})")
        return path

    def check(self) -> list[str]:
        import importlib.util

        from cytoreg.models.weights import hub_check

        if importlib.util.find_spec("timm") is None:
            return [f"model '{self.name}' needs timm, torch and torchvision: pip install 'cytoreg[clip]'"]
        try:
            ckpt = self._checkpoint()
        except ModelLoadError as exc:
            return [str(exc)]
        pretrained = self.params.get("pretrained")
        if ckpt is None and pretrained:  # timm's hub ids: hf-hub:REPO, or timm/ARCH.TAG for a tag
            repo = pretrained[len("hf-hub:"):] if pretrained.startswith("hf-hub:") else \
                f"timm/{self.params['arch']}.{pretrained}"
            return hub_check(self.name, repo, self.params.get("download_hint"))
        return []

    def weights_identity(self) -> str:
        try:
            ckpt = self._checkpoint()
        except ModelLoadError:
            return "missing"
        if ckpt is not None:
            return file_identity(ckpt)
        return str(self.params.get("pretrained", "random-init"))

    def feature_keys(self) -> list[str]:
        keys = [self.params.get("pooling", "cls")]
        for i in self.params.get("layers", []):
            keys += [f"block{i}/cls", f"block{i}/mean"]
        return keys

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import timm
            import torch
            from torchvision import transforms
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs timm, torch and torchvision: pip install 'cytoreg[clip]' "
                                 f"({exc})") from exc
        device = pick_device(self.device)
        size = int(self.params.get("img_size", 224))
        kwargs = resolve_class_kwargs(dict(self.params.get("model_kwargs") or {}, num_classes=0),
                                      f"model '{self.name}' ({self.spec.path})")
        if "img_size" in self.params or "img_size" not in kwargs:
            kwargs["img_size"] = size
        ckpt = self._checkpoint()
        pretrained = self.params.get("pretrained")
        try:
            if pretrained and ckpt is None:
                name = (pretrained if pretrained.startswith(("hf-hub:", "hf_hub:", "local-dir:"))
                        else f"{self.params['arch']}.{pretrained}")
                model = timm.create_model(name, pretrained=True, **kwargs)
            else:
                model = timm.create_model(self.params["arch"], pretrained=False, **kwargs)
        except RuntimeError as exc:
            raise ModelLoadError(f"model '{self.name}': timm could not build {self.params['arch']}"
                                 f"{' from ' + pretrained if pretrained else ''}: {str(exc).splitlines()[0]}. Check "
                                 f"params.model_kwargs in {self.spec.path} against the model card") from exc
        except Exception as exc:  # hub lookups offline: huggingface_hub / OSError
            from cytoreg.models.weights import hf_cache_dir

            gated = f" The repository is gated: accept the licence at {self.spec.get('gated')} first." \
                if self.spec.get("gated") else ""
            raise ModelLoadError(
                f"model '{self.name}': cannot load pretrained weights '{pretrained}' for {self.params['arch']}; looked "
                f"in the Hugging Face cache {hf_cache_dir()}{' (HF_HUB_OFFLINE is set)' if os.environ.get('HF_HUB_OFFLINE') else ''}. "
                f"{self.params.get('download_hint', 'Download it on a machine with network (hf download).')}"
                f"{gated} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        if ckpt is not None:
            self._load_checkpoint(model, ckpt, torch, timm)
        self._model = model.to(device).eval()
        self._torch, self._device = torch, device
        if self.params.get("preprocess"):
            self._transform = build_transform(self.params["preprocess"])
            self._check_pretrained_cfg(model)
        else:
            self._transform = transforms.Compose([
                transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
                transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def _check_pretrained_cfg(self, model) -> None:
        """The checkpoint's own config.json (``pretrained_cfg``) against the spec's mean/std: a
        disagreement is printed (which one the card means is for the user to decide), never hidden."""
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if cfg.get("source") not in ("hf-hub", "local-dir"):
            return
        pre = self.params["preprocess"]
        for key in ("mean", "std"):
            theirs = cfg.get(key)
            if theirs is not None and any(abs(float(a) - float(b)) > 1e-4 for a, b in zip(theirs, pre[key])):
                print(f"cytoreg: model '{self.name}': the checkpoint's config.json gives {key} {list(theirs)}, the "
                      f"spec ({self.spec.path}) {pre[key]}; cytoreg uses the spec's", file=sys.stderr)

    def _load_checkpoint(self, model, path: Path, torch, timm) -> None:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ModelLoadError(f"model '{self.name}': {path} cannot be read as a weights-only torch checkpoint "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
        if self.params.get("checkpoint_format", "dinobloom") == "dinobloom":
            sd = dinobloom_state_dict(sd)
        elif "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        from timm.models.vision_transformer import checkpoint_filter_fn

        fix = (f"check params.arch and params.model_kwargs in {self.spec.path}, or that {path} is the "
               f"checkpoint meant for this model")
        try:
            sd = checkpoint_filter_fn(sd, model)
            missing, unexpected = model.load_state_dict(sd, strict=False)
        except RuntimeError as exc:  # shape mismatches
            lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
            raise ModelLoadError(f"model '{self.name}': {path} does not fit {self.params['arch']} "
                                 f"({len(lines)} tensors of the wrong shape, e.g. {lines[0] if lines else exc}); "
                                 f"{fix}") from exc
        if missing or unexpected:
            raise ModelLoadError(f"model '{self.name}': {path} does not fit {self.params['arch']} "
                                 f"(missing {list(missing)[:5]}{'…' if len(missing) > 5 else ''}, unexpected "
                                 f"{list(unexpected)[:5]}{'…' if len(unexpected) > 5 else ''}); {fix}")

    def preprocess(self, image: Any) -> Any:
        if self._model is None:
            self.load()
        return self._transform(image.convert("RGB"))

    def extract_batch(self, batch: Any) -> dict[str, np.ndarray]:
        torch = self._torch
        x = batch.to(self._device)
        out: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            if self.params.get("pooling", "cls") == "cls+mean":
                tokens = self._model.forward_features(x)  # after the final norm: [CLS, registers, patches]
                prefix = int(getattr(self._model, "num_prefix_tokens", 1))
                out["cls+mean"] = torch.cat([tokens[:, 0], tokens[:, prefix:].mean(dim=1)], dim=-1).float().cpu().numpy()
            else:
                f = self._model(x)
                out["cls"] = (f[:, 0] if f.ndim == 3 else f).float().cpu().numpy()  # global_pool '' gives tokens
            layers = self.params.get("layers")
            if layers:
                maps = self._model.forward_intermediates(x, indices=list(layers), intermediates_only=True,
                                                         output_fmt="NLC", norm=False, return_prefix_tokens=True)
                for i, (patches, prefix) in zip(layers, maps):
                    out[f"block{i}/cls"] = prefix[:, 0].float().cpu().numpy()
                    out[f"block{i}/mean"] = patches.mean(dim=1).float().cpu().numpy()
        return out

    def close(self) -> None:
        self._model = None
