"""Frozen vision encoders through timm: DINOv2 (``vit_*_patch14_dinov2``, hub weights ``timm/…``)
and DinoBloom (the same architecture + the published ``DinoBloom-{S,B,L,G}.pth``, whose
``teacher`` state dict is filtered and converted as DinoBloom's own loader does, then loaded with
``weights_only=True``). Features are the CLS token after the final norm (DINOv2's ``model(x)``),
and optionally the CLS / mean patch token of chosen blocks for layer-wise probes. Preprocessing is
DinoBloom's: resize to ``img_size`` (no crop), ImageNet mean/std."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import FeatureExtractor
from cytoreg.models.weights import file_identity, pick_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
            "pretrained": {"type": "string", "description": "hf-hub:<repo> or a timm pretrained tag (e.g. lvd142m)"},
            "checkpoint": {"type": "string", "description": "path of a .pth/.pt/.safetensors checkpoint"},
            "checkpoint_env": {"type": "string", "description": "environment variable holding that path"},
            "checkpoint_format": {"enum": ["dinobloom", "state_dict"], "description": "how to read the checkpoint"},
            "img_size": {"type": "integer", "minimum": 14},
            "model_kwargs": {"type": "object", "description": "extra timm.create_model arguments (depth, embed_dim, ...)"},
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
        keys = ["cls"]
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
        kwargs = dict(self.params.get("model_kwargs") or {}, num_classes=0, img_size=size)
        ckpt = self._checkpoint()
        pretrained = self.params.get("pretrained")
        try:
            if pretrained and ckpt is None:
                name = pretrained if pretrained.startswith("hf-hub:") else f"{self.params['arch']}.{pretrained}"
                model = timm.create_model(name, pretrained=True, **kwargs)
            else:
                model = timm.create_model(self.params["arch"], pretrained=False, **kwargs)
        except RuntimeError as exc:
            raise ModelLoadError(f"model '{self.name}': timm could not build {self.params['arch']}: {exc}") from exc
        except Exception as exc:  # hub lookups offline: huggingface_hub / OSError
            from cytoreg.models.weights import hf_cache_dir

            raise ModelLoadError(
                f"model '{self.name}': cannot load pretrained weights '{pretrained}' for {self.params['arch']}; looked "
                f"in the Hugging Face cache {hf_cache_dir()}{' (HF_HUB_OFFLINE is set)' if os.environ.get('HF_HUB_OFFLINE') else ''}. "
                f"{self.params.get('download_hint', 'Download it on a machine with network (hf download).')} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        if ckpt is not None:
            self._load_checkpoint(model, ckpt, torch, timm)
        self._model = model.to(device).eval()
        self._torch, self._device = torch, device
        self._transform = transforms.Compose([
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

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
            out["cls"] = self._model(x).float().cpu().numpy()
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
