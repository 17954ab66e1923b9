"""CLIP-family embedders through open_clip (``hf-hub:``, ``local-dir:``, built-in names with a
``pretrained`` tag) and CONCH through its own checkpoint format. torch/open_clip are imported
only in :meth:`load`."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import Embedder


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def file_identity(path: Path) -> str:
    """Size + hash of the first and last MiB: cheap for multi-GB weights, changes when they change."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return f"{size}:{h.hexdigest()[:16]}"


def pick_device(requested: str | None) -> str:
    import torch

    if requested:
        if requested == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("--device cuda was asked for, but torch sees no CUDA device")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class OpenCLIP(Embedder):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            "model": {"type": "string", "description": "hf-hub:ORG/REPO, local-dir:/path, or an open_clip config name"},
            "pretrained": {"type": "string", "description": "pretrained tag or checkpoint file for a config name"},
            "precision": {"enum": ["fp32", "fp16", "bf16"], "description": "on GPU; CPU always runs fp32"},
            "download_hint": {"type": "string", "description": "where users get the weights (shown when missing)"},
            "embedding_cache": {"type": "boolean"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id: str = self.params["model"]
        self._model = None
        self._preprocess = None
        self._tokenizer = None
        self._emb_cache = None

    # identity ----------------------------------------------------------------------
    def _local_weights(self) -> Path | None:
        if self.model_id.startswith("local-dir:"):
            d = Path(self.model_id[len("local-dir:"):]).expanduser()
            for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                         "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "model.safetensors",
                         "pytorch_model.bin"):
                if (d / name).exists():
                    return d / name
        pre = self.params.get("pretrained")
        if pre and Path(pre).expanduser().is_file():
            return Path(pre).expanduser()
        return None

    def weights_identity(self) -> str:
        local = self._local_weights()
        return f"{self.model_id}|{file_identity(local)}" if local else f"{self.model_id}|{self.params.get('pretrained', '')}"

    def _missing(self, exc: Exception) -> ModelLoadError:
        where = []
        if self.model_id.startswith("hf-hub:"):
            repo = self.model_id[len("hf-hub:"):]
            where.append(f"the Hugging Face cache {hf_cache_dir()} (models--{repo.replace('/', '--')})")
            how = self.params.get("download_hint") or f"huggingface-cli download {repo} (on a machine with network), then copy the cache"
        elif self.model_id.startswith("local-dir:"):
            where.append(f"the folder {self.model_id[len('local-dir:'):]} (open_clip_config.json + weights)")
            how = self.params.get("download_hint") or "save the model there with open_clip_config.json and its weights"
        else:
            where.append(f"open_clip's pretrained tag '{self.params.get('pretrained')}' for '{self.model_id}' "
                         f"(cache {hf_cache_dir()})")
            how = self.params.get("download_hint") or "download the weights on a machine with network"
        offline = " HF_HUB_OFFLINE is set, so nothing was downloaded." if os.environ.get("HF_HUB_OFFLINE") else ""
        return ModelLoadError(f"model '{self.name}': cannot load weights for {self.model_id}; looked in "
                              f"{'; '.join(where)}.{offline} Get them: {how}. ({type(exc).__name__}: {exc})")

    # loading -----------------------------------------------------------------------
    def load(self) -> None:
        try:
            import open_clip
            import torch
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs open_clip and torch: pip install 'cytoreg[clip]' ({exc})") from exc
        device = pick_device(self.device)
        precision = self.params.get("precision", "fp32") if device != "cpu" else "fp32"
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_id, pretrained=self.params.get("pretrained"), precision=precision, device=device,
                weights_only=True, require_pretrained=True)
            tokenizer = open_clip.get_tokenizer(self.model_id)
        except (RuntimeError, FileNotFoundError, OSError, ValueError) as exc:
            raise self._missing(exc) from exc
        model.eval()
        self._model, self._preprocess, self._tokenizer = model, preprocess, tokenizer
        self._device = device
        self._torch = torch

    def _ensure(self) -> None:
        if self._model is None:
            self.load()

    def encode_images(self, images: list) -> np.ndarray:
        self._ensure()
        torch = self._torch
        batch = torch.stack([self._preprocess(im) for im in images]).to(self._device)
        with torch.inference_mode():
            feats = self._model.encode_image(batch.to(next(self._model.parameters()).dtype), normalize=True)
        return feats.float().cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self._ensure()
        torch = self._torch
        tokens = self._tokenizer(texts).to(self._device)
        with torch.inference_mode():
            feats = self._model.encode_text(tokens, normalize=True)
        return feats.float().cpu().numpy()

    def logit_scale(self) -> float:
        self._ensure()
        return float(self._model.logit_scale.exp().item())

    def close(self) -> None:
        self._model = None


class Conch(OpenCLIP):
    """CONCH: ``conch.open_clip_custom`` when installed (the published package), loading the
    checkpoint file with ``weights_only=True``; embeddings from ``encode_image(proj_contrast=True,
    normalize=True)``."""

    params_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["checkpoint"],
        "properties": {
            "config": {"type": "string", "description": "CONCH model config (default conch_ViT-B-16)"},
            "checkpoint": {"type": "string", "description": "path to pytorch_model.bin from MahmoodLab/CONCH"},
            "download_hint": {"type": "string"},
        },
    }

    def __init__(self, spec, device=None):
        self.params = dict(spec.get("params") or {})
        spec_params = dict(self.params)
        super().__init__(spec, device)
        self.params = spec_params
        self.model_id = self.params.get("config", "conch_ViT-B-16")

    def _local_weights(self) -> Path | None:
        p = Path(self.params["checkpoint"]).expanduser()
        return p if p.is_file() else None

    def load(self) -> None:
        ckpt = Path(self.params["checkpoint"]).expanduser()
        hint = self.params.get("download_hint") or ("request access at https://huggingface.co/MahmoodLab/conch "
                                                    "(license-gated), download pytorch_model.bin and set params.checkpoint")
        if not ckpt.is_file():
            raise ModelLoadError(f"model '{self.name}': CONCH checkpoint not found at {ckpt} (params.checkpoint in "
                                 f"{self.spec.path}). Get it: {hint}.")
        try:
            import torch
            from conch.open_clip_custom import create_model, get_tokenizer
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs the CONCH package: pip install conch-fork "
                                 f"(or git+https://github.com/mahmoodlab/CONCH) ({exc})") from exc
        device = pick_device(self.device)
        model = create_model(self.model_id, device=device, pretrained=None)
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        real_missing = [k for k in missing if not k.startswith("text_decoder")]
        if real_missing or unexpected:
            raise ModelLoadError(f"model '{self.name}': {ckpt} does not match {self.model_id}: missing "
                                 f"{real_missing[:5]}, unexpected {list(unexpected)[:5]}")
        model.eval()
        self._model, self._torch, self._device = model, torch, device
        self._hf_tok = get_tokenizer()
        from conch.open_clip_custom.transform import image_transform

        self._preprocess = image_transform(model.visual.image_size[0] if hasattr(model.visual, "image_size") else 448,
                                           is_train=False)

    def _tokenize(self, texts: list[str]):
        torch = self._torch
        tok = self._hf_tok(texts, max_length=127, padding="max_length", truncation=True,
                           add_special_tokens=True, return_token_type_ids=False, return_tensors="pt")
        ids = tok["input_ids"]
        return torch.nn.functional.pad(ids, (0, 1), value=self._hf_tok.pad_token_id)

    def encode_images(self, images: list) -> np.ndarray:
        self._ensure()
        torch = self._torch
        batch = torch.stack([self._preprocess(im) for im in images]).to(self._device)
        with torch.inference_mode():
            feats = self._model.encode_image(batch, proj_contrast=True, normalize=True)
        return feats.float().cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self._ensure()
        with self._torch.inference_mode():
            feats = self._model.encode_text(self._tokenize(texts).to(self._device), normalize=True)
        return feats.float().cpu().numpy()
