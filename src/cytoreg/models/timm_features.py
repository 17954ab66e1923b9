"""Frozen vision encoders through timm: DINOv2 (``vit_*_patch14_dinov2``, hub weights ``timm/…``),
DinoBloom (the same architecture + the published ``DinoBloom-{S,B,L,G}.pth``, whose ``teacher``
state dict is filtered and converted as DinoBloom's own loader does, then loaded with
``weights_only=True``), and the pathology encoders published in timm's hub layout (``config.json``
+ weights; UNI, UNI2-h, Virchow2, H-optimus, Prov-GigaPath), loaded by ``hf-hub:<repo>`` or
``local-dir:<folder>`` with the model card's ``timm.create_model`` arguments; and ViTs published as
one state-dict file in another layout (CONCH v1.5: ``checkpoint: hf-hub:<repo>/<file>``, the
trunk's keys under ``checkpoint_prefix``, the rest a CoCa attentional pooler, models/coca_pool.py).

Features: ``cls`` is the CLS token after the final norm (``model(x)`` of a token-pooled ViT);
``cls+mean`` concatenates it with the mean of the patch tokens, register tokens excluded
(Virchow2's published embedding); optionally the CLS / mean patch token of chosen blocks for
layer-wise probes; ``attn_pool`` is the checkpoint's attentional pooler over all normed tokens
(CONCH v1.5's 768-d embedding). Preprocessing is the spec's ``preprocess`` (the model card's size, crop,
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
            "checkpoint": {"type": "string", "description": "path of a .pth/.pt/.safetensors checkpoint, or "
                                                            "hf-hub:<org>/<repo>/<file> (one file of a hub repo)"},
            "checkpoint_env": {"type": "string", "description": "environment variable holding that path"},
            "checkpoint_format": {"enum": ["dinobloom", "state_dict"], "description": "how to read the checkpoint"},
            "checkpoint_prefix": {"type": "string", "minLength": 1,
                                  "description": "the ViT's keys start with this (CONCH v1.5: 'trunk.'); the "
                                                 "other keys are the pooling head's (pooling: attn_pool)"},
            "pos_embed_resize": {"type": "object", "additionalProperties": False, "required": ["mode"],
                                 "description": "resize the checkpoint's position embedding to img_size as the "
                                                "published code does at each forward: dino = bicubic with scale "
                                                "(n + 0.1) / N, after a bilinear resample to base_grid when the "
                                                "checkpoint's differs",
                                 "properties": {"mode": {"enum": ["dino"]},
                                                "base_grid": {"type": "integer", "minimum": 1}}},
            "attn_pool": {"type": "object", "additionalProperties": False, "required": ["heads"],
                          "description": "the checkpoint's CoCa attentional pooler (pooling: attn_pool)",
                          "properties": {"heads": {"type": "integer", "minimum": 1},
                                         "prefix": {"type": "string", "description": "default attn_pool_contrast."},
                                         "norm": {"type": "string", "description": "default ln_contrast."}}},
            "img_size": {"type": "integer", "minimum": 14},
            "model_kwargs": {"type": "object", "description": "extra timm.create_model arguments (depth, embed_dim, ...)"},
            "preprocess": PREPROCESS_SCHEMA,
            "pooling": {"enum": ["cls", "cls+mean", "attn_pool"],
                        "description": "cls: CLS after the final norm; cls+mean: CLS ⊕ mean of the patch tokens "
                                       "(register tokens excluded); attn_pool: the checkpoint's attentional pooler "
                                       "over all normed tokens (see attn_pool)"},
            "layers": {"type": "array", "items": {"type": "integer"},
                       "description": "block indices (0-based) whose CLS and mean patch tokens are also returned"},
            "download_hint": {"type": "string"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self._model = None
        self._head = None

    @staticmethod
    def _split_hub(ref: str) -> tuple[str, str]:
        parts = ref.split(":", 1)[1].split("/")
        return "/".join(parts[:2]), "/".join(parts[2:])

    def _hub_file(self, ref: str, download: bool) -> Path | None:
        """``hf-hub:<org>/<repo>/<file>``: the cached file (``download``: fetched when online)."""
        from cytoreg.models.weights import hf_cache_dir

        repo, filename = self._split_hub(ref)
        if repo.count("/") != 1 or not filename:
            raise ModelLoadError(f"model '{self.name}': params.checkpoint {ref!r} should be hf-hub:<org>/<repo>/<file> "
                                 f"({self.spec.path})")
        try:
            from huggingface_hub import hf_hub_download, try_to_load_from_cache
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs huggingface_hub for {ref}: "
                                 "pip install huggingface_hub") from exc
        hit = try_to_load_from_cache(repo, filename, cache_dir=str(hf_cache_dir()))
        if isinstance(hit, str):
            return Path(hit)
        if download:
            try:
                return Path(hf_hub_download(repo, filename, cache_dir=str(hf_cache_dir())))
            except Exception as exc:  # offline, gated, not found: huggingface_hub's many errors
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise ModelLoadError(self._hub_file_missing(repo, filename)
                                     + f" ({type(exc).__name__}: {first})") from exc
        raise ModelLoadError(self._hub_file_missing(repo, filename))

    def _hub_file_missing(self, repo: str, filename: str) -> str:
        from cytoreg.models.weights import hf_cache_dir

        from cytoreg.models.check import how_to_get

        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        return (f"model '{self.name}': {filename} of {repo} is not in the Hugging Face cache {hf_cache_dir()}{offline}."
                f" Get it: {how_to_get(self.spec, repo, filename)}")

    def _checkpoint(self, download: bool = False) -> Path | None:
        raw = self.params.get("checkpoint") or (os.environ.get(self.params["checkpoint_env"])
                                                if self.params.get("checkpoint_env") else None)
        if raw is not None and raw.startswith(("hf-hub:", "hf_hub:")):
            return self._hub_file(raw, download)
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

    def weights_identity(self) -> str:
        raw = str(self.params.get("checkpoint") or "")
        if raw.startswith(("hf-hub:", "hf_hub:")):  # like pretrained: hf-hub:, the reference (stable before
            return raw  # and after the download), not the cached file's bytes
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
        ckpt = self._checkpoint(download=True)
        unused = [k for k in ("checkpoint_prefix", "pos_embed_resize", "attn_pool") if k in self.params]
        if ckpt is None and unused:
            raise ModelLoadError(f"model '{self.name}': params.{unused[0]} applies to a params.checkpoint file, and "
                                 f"the spec has none ({self.spec.path}); remove it or give the checkpoint")
        pretrained = self.params.get("pretrained")
        try:
            if pretrained and ckpt is None:
                name = (pretrained if pretrained.startswith(("hf-hub:", "hf_hub:", "local-dir:"))
                        else f"{self.params['arch']}.{pretrained}")
                model = timm.create_model(name, pretrained=True, **kwargs)
            else:
                model = timm.create_model(self.params["arch"], pretrained=False, **kwargs)
        except Exception as exc:  # a wrong architecture, a damaged download, or weights not there (offline, gated)
            from cytoreg.models.check import how_to_get
            from cytoreg.models.weights import hf_cache_dir, library_words

            words = library_words(exc)
            if not pretrained or ckpt is not None or (isinstance(exc, RuntimeError) and "size mismatch" in str(exc)):
                raise ModelLoadError(f"model '{self.name}': timm could not build {self.params['arch']}"
                                     f"{' from ' + pretrained if pretrained else ''}: {words}. Check params.arch and "
                                     f"params.model_kwargs in {self.spec.path} against the model card") from exc
            if "pickled Python objects" in words:  # a truncated or foreign file where the weights should be
                raise ModelLoadError(f"model '{self.name}': the weights of '{pretrained}' in the Hugging Face cache "
                                     f"{hf_cache_dir()} cannot be read ({words}). `cytoreg models check {self.name}` "
                                     "names the file; delete it and download it again") from exc
            repo = pretrained.split(":", 1)[1] if pretrained and pretrained.startswith(("hf-hub:", "hf_hub:")) else None
            raise ModelLoadError(
                f"model '{self.name}': cannot load pretrained weights '{pretrained}' for {self.params['arch']}; looked "
                f"in the Hugging Face cache {hf_cache_dir()}{' (HF_HUB_OFFLINE is set)' if os.environ.get('HF_HUB_OFFLINE') else ''}. "
                f"Get it: {how_to_get(self.spec, repo) or 'hf download on a machine with network'}. ({words})") from exc
        if ckpt is not None:
            self._load_checkpoint(model, ckpt, torch, timm)
        if self.params.get("pooling") == "attn_pool" and self._head is None:
            raise ModelLoadError(f"model '{self.name}': pooling: attn_pool reads the pooler from params.checkpoint "
                                 f"with params.checkpoint_prefix ({self.spec.path})")
        self._model = model.to(device).eval()
        if self._head is not None:
            self._head = self._head.to(device)
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
                from cytoreg.models.weights import library_words

                raise ModelLoadError(f"model '{self.name}': {path} cannot be read as a weights-only torch checkpoint "
                                     f"({library_words(exc)}); a truncated download? delete it and get it again") from exc
        if self.params.get("checkpoint_format", "dinobloom") == "dinobloom":
            sd = dinobloom_state_dict(sd)
        elif "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        from timm.models.vision_transformer import checkpoint_filter_fn

        fix = (f"check params.arch and params.model_kwargs in {self.spec.path}, or that {path} is the "
               f"checkpoint meant for this model")
        prefix = self.params.get("checkpoint_prefix")
        rest: dict = {}
        if prefix:
            rest = {k: v for k, v in sd.items() if not k.startswith(prefix)}
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            if not sd:
                raise ModelLoadError(f"model '{self.name}': no key of {path} starts with params.checkpoint_prefix "
                                     f"{prefix!r} (e.g. {sorted(rest)[:3]}); {fix}")
        self._head = self._pool_head(rest, path, fix)
        resize = self.params.get("pos_embed_resize")
        if resize and "pos_embed" in sd:
            from cytoreg.models.coca_pool import dino_pos_embed

            try:
                sd["pos_embed"] = dino_pos_embed(sd["pos_embed"], tuple(model.patch_embed.grid_size),
                                                 resize.get("base_grid"))
            except ValueError as exc:
                raise ModelLoadError(f"model '{self.name}': params.pos_embed_resize: {exc}; {fix}") from exc
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

    def _pool_head(self, rest: dict, path: Path, fix: str) -> Any:
        """The attentional pooler from the keys outside the trunk (``pooling: attn_pool``); keys
        that nothing would use are an error."""
        if self.params.get("pooling") != "attn_pool":
            if rest:
                raise ModelLoadError(f"model '{self.name}': {path} has {len(rest)} keys outside "
                                     f"params.checkpoint_prefix (e.g. {sorted(rest)[:3]}) that nothing uses; set "
                                     f"pooling: attn_pool if they are the model's pooler ({self.spec.path})")
            return None
        from cytoreg.models.coca_pool import attentional_pooler

        cfg = self.params.get("attn_pool") or {}
        if "heads" not in cfg or not rest:
            raise ModelLoadError(f"model '{self.name}': pooling: attn_pool needs params.attn_pool.heads and "
                                 f"params.checkpoint_prefix (the trunk's keys; the pooler's are the others) "
                                 f"({self.spec.path})")
        pre, norm = cfg.get("prefix", "attn_pool_contrast."), cfg.get("norm", "ln_contrast.")
        state = {k[len(pre):]: v for k, v in rest.items() if k.startswith(pre)}
        state.update({"norm." + k[len(norm):]: v for k, v in rest.items() if k.startswith(norm)})
        left = sorted(k for k in rest if not k.startswith((pre, norm)))
        if left:
            raise ModelLoadError(f"model '{self.name}': {path} has keys neither in the trunk nor in the pooler "
                                 f"({left[:3]}); {fix}")
        try:
            return attentional_pooler(state, int(cfg["heads"]))
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"model '{self.name}': the pooler keys {pre}* / {norm}* of {path} do not make an "
                                 f"attentional pooler ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                                 f"{fix}") from exc

    def preprocess(self, image: Any) -> Any:
        if self._model is None:
            self.load()
        return self._transform(image.convert("RGB"))

    def extract_batch(self, batch: Any) -> dict[str, np.ndarray]:
        torch = self._torch
        x = batch.to(self._device)
        out: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            if self.params.get("pooling") == "attn_pool":
                out["attn_pool"] = self._head(self._model.forward_features(x)).float().cpu().numpy()
            elif self.params.get("pooling", "cls") == "cls+mean":
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
