"""CLIP-family embedders through open_clip (``hf-hub:``, ``local-dir:``, built-in names with a
``pretrained`` tag) and CONCH through its own checkpoint format. torch/open_clip are imported
only in :meth:`load`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import Embedder
from cytoreg.models.weights import file_identity, hf_cache_dir, pick_device


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
        self.model_id: str = self.params.get("model", "")
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
            how = self.params.get("download_hint") or f"hf download {repo} (on a machine with network), then copy the cache"
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

    def _present_but_wrong(self, exc: Exception) -> ModelLoadError | None:
        """A checkpoint file that is here but did not load: what does not fit (its keys against the
        config built on the meta device), never download advice. None when no file is here."""
        from cytoreg.models.weights import library_words

        local = self._local_weights()
        if self.model_id.startswith(("hf-hub:", "local-dir:")):
            if local is None or not isinstance(exc, RuntimeError) or "state_dict" not in str(exc):
                return None  # not there (or not a weights problem): where to get it
            import re

            text = str(exc)
            shapes = re.findall(r"size mismatch for ([^:]+):", text)
            missing = re.search(r"Missing key\(s\) in state_dict: ([^\n]*)", text)
            what = (f"size mismatch in {len(shapes)} tensor(s), e.g. {', '.join(shapes[:3])}" if shapes else
                    f"missing keys: {missing.group(1)[:200]}" if missing else library_words(exc))
            return ModelLoadError(f"model '{self.name}': {local} is present but does not fit its open_clip config "
                                  f"({what}); the folder's open_clip_config.json and weights must come from the same "
                                  "model: replace them with a complete copy")
        pre = self.params.get("pretrained")
        path = Path(pre).expanduser() if pre else None
        if path is None or not path.is_file():
            return None
        from cytoreg.models.keyfit import open_clip_fit

        where = f"{path} (params.pretrained in {self.spec.path})"
        try:
            fit = open_clip_fit(self.model_id, path)
        except Exception:  # noqa: BLE001 - keys unreadable: the load's own words
            fit = None
        if fit is not None and not fit.ok:
            return ModelLoadError(f"model '{self.name}': {where}: file present but not a {self.model_id} state dict: "
                                  f"{fit.words()}. Check params.model, or that the file is the checkpoint meant for "
                                  f"this model")
        return ModelLoadError(f"model '{self.name}': {where} is present but open_clip could not load it as "
                              f"{self.model_id}: {library_words(exc)}")

    def load(self) -> None:
        try:
            import open_clip
            import torch
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs open_clip and torch: pip install 'cytoreg[clip]' ({exc})") from exc
        device = pick_device(self.device)
        precision = self.params.get("precision", "fp32") if device != "cpu" else "fp32"
        self._check_grid()
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_id, pretrained=self.params.get("pretrained"), precision=precision, device=device,
                weights_only=True, require_pretrained=True)
            tokenizer = open_clip.get_tokenizer(self.model_id)
        except (RuntimeError, FileNotFoundError, OSError, ValueError) as exc:
            raise self._present_but_wrong(exc) or self._missing(exc) from exc
        model.eval()
        self._model, self._preprocess, self._tokenizer = model, preprocess, tokenizer
        self._device = device
        self._torch = torch

    def _check_grid(self) -> None:
        """A checkpoint file for a named config: its position embedding must have the config's grid.
        open_clip resamples a mismatching one without a word, which for a published checkpoint means
        the spec names the wrong config (ViT-L-14 vs ViT-L-14-336)."""
        pre = self.params.get("pretrained")
        path = Path(pre).expanduser() if pre else None
        if path is None or not path.is_file() or self.model_id.startswith(("hf-hub:", "local-dir:")):
            return
        import open_clip

        vision = (open_clip.get_model_config(self.model_id) or {}).get("vision_cfg") or {}
        size, patch = vision.get("image_size"), vision.get("patch_size")
        if not isinstance(size, int) or not isinstance(patch, int):
            return
        try:
            have = checkpoint_positions(path)
        except Exception as exc:  # noqa: BLE001 - pickled objects beyond weights, a truncated file
            raise ModelLoadError(f"model '{self.name}': cannot read {path} (params.pretrained in {self.spec.path}) "
                                 f"as open_clip weights with weights_only=True: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        want = (size // patch) ** 2 + 1
        if have is not None and have != want:
            side = round((have - 1) ** 0.5)
            raise ModelLoadError(
                f"model '{self.name}': {path} holds {have} image positions ({side} x {side} patches + CLS: "
                f"{side * patch} px at patch {patch}), the open_clip config '{self.model_id}' expects {want} "
                f"({size} px); open_clip would resample them silently. Set params.model in {self.spec.path} "
                f"to the config of the checkpoint's resolution")

    def _ensure(self) -> None:
        if self._model is None:
            self.load()

    def preprocess(self, image):
        self._ensure()
        return self._preprocess(image)

    def encode_batch(self, batch) -> np.ndarray:
        self._ensure()
        torch = self._torch
        dtype = next(self._model.parameters()).dtype
        with torch.inference_mode():
            feats = self._model.encode_image(batch.to(self._device, dtype=dtype, non_blocking=True), normalize=True)
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


def checkpoint_positions(path: Path) -> int | None:
    """Length of ``visual.positional_embedding`` in an open_clip checkpoint file (plain state dict,
    ``{"state_dict": ...}``, ``module.`` prefixes), read without loading the weights where the
    format allows (safetensors header, memory-mapped torch zip); None when it has no such key."""
    import torch

    key = "visual.positional_embedding"
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            names = [k for k in f.keys() if k.endswith(key)]
            return int(f.get_slice(names[0]).get_shape()[0]) if names else None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) file cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    for k, v in (state.items() if isinstance(state, dict) else []):
        if k in (key, "module." + key) and hasattr(v, "shape"):
            return int(v.shape[0])
    return None


class Conch(OpenCLIP):
    """CONCH through the published ``conch`` package (``pip install conch-fork`` or the GitHub
    repo): a CoCa model from its JSON config, the checkpoint loaded with ``weights_only=True``
    and checked key by key (the package's own loader ignores mismatches), OpenAI mean/std
    preprocessing as ``create_model_from_pretrained`` does, and embeddings from
    ``encode_image(proj_contrast=True, normalize=True)``."""

    params_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["checkpoint"],
        "properties": {
            "model": {"type": "string", "description": "CONCH config name in the conch package or a JSON file "
                                                      "(default conch_ViT-B-16)"},
            "checkpoint": {"type": "string", "description": "pytorch_model.bin path, or hf_hub:MahmoodLab/conch "
                                                           "(read from the HF cache)"},
            "download_hint": {"type": "string"},
        },
    }
    DEFAULT_CONFIG = "conch_ViT-B-16"

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id = self.params.get("model", self.DEFAULT_CONFIG)

    def _hint(self) -> str:
        return self.params.get("download_hint") or (
            "request access at https://huggingface.co/MahmoodLab/conch (license-gated), download "
            "pytorch_model.bin and point params.checkpoint at it")

    def _checkpoint(self) -> Path:
        ref = self.params["checkpoint"]
        if ref.startswith("hf_hub:"):
            repo = ref[len("hf_hub:"):]
            try:
                from huggingface_hub import hf_hub_download

                return Path(hf_hub_download(repo, "pytorch_model.bin"))
            except Exception as exc:  # noqa: BLE001 - any hub failure means: not available here
                raise ModelLoadError(
                    f"model '{self.name}': CONCH weights {ref} are not in the Hugging Face cache {hf_cache_dir()} "
                    f"(models--{repo.replace('/', '--')}). Get them: {self._hint()}. "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        path = Path(ref).expanduser()
        if not path.is_absolute() and self.spec.path is not None:
            path = Path(self.spec.path).parent / path
        if not path.is_file():
            raise ModelLoadError(f"model '{self.name}': CONCH checkpoint not found at {path} (params.checkpoint in "
                                 f"{self.spec.path}). Get it: {self._hint()}.")
        return path

    def _local_weights(self) -> Path | None:
        if self.params["checkpoint"].startswith("hf_hub:"):  # never a network lookup for an identity
            from cytoreg.models.weights import hub_cached

            repo = self.params["checkpoint"][len("hf_hub:"):]
            if not hub_cached(repo, "pytorch_model.bin"):
                return None
        try:
            return self._checkpoint()
        except ModelLoadError:
            return None

    def _config(self) -> dict:
        import json

        ref = self.model_id
        if ref.endswith(".json"):
            path = Path(ref).expanduser()
            if not path.is_absolute() and self.spec.path is not None:
                path = Path(self.spec.path).parent / path
        else:
            from conch.open_clip_custom import factory

            path = factory.CFG_DIR / f"{ref}.json"
        if not path.is_file():
            raise ModelLoadError(f"model '{self.name}': CONCH config {path} not found (params.model in "
                                 f"{self.spec.path}); use {self.DEFAULT_CONFIG} or a JSON file")
        cfg = json.loads(path.read_text())
        cfg.pop("custom_text", None)
        return cfg

    def load(self) -> None:
        try:
            import warnings

            import torch

            with warnings.catch_warnings():  # conch imports timm.models.layers (deprecated alias)
                warnings.simplefilter("ignore", FutureWarning)
                from conch.open_clip_custom import get_tokenizer
                from conch.open_clip_custom.coca_model import CoCa, resize_pos_embed
                from conch.open_clip_custom.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
                from conch.open_clip_custom.transform import image_transform
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs the CONCH package: pip install conch-fork "
                                 f"(or git+https://github.com/mahmoodlab/CONCH) ({exc})") from exc
        ckpt = self._checkpoint()
        device = pick_device(self.device)
        model = CoCa(**self._config())
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unreadable / pickled-code checkpoints
            raise ModelLoadError(f"model '{self.name}': cannot read {ckpt} as a plain state dict "
                                 f"(weights_only=True): {type(exc).__name__}: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
        resize_pos_embed(state, model)
        missing, unexpected = model.load_state_dict(state, strict=False)
        real_missing = [k for k in missing if not k.startswith("text_decoder")]
        if real_missing or unexpected:
            raise ModelLoadError(f"model '{self.name}': {ckpt} does not match the config {self.model_id}: "
                                 f"missing {real_missing[:5]}, unexpected {list(unexpected)[:5]}")
        model.to(device).eval()
        self._model, self._torch, self._device = model, torch, device
        self._hf_tok = get_tokenizer()
        self._preprocess = image_transform(model.visual.image_size, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)

    def _tokenize(self, texts: list[str]):
        """CONCH's ``tokenize`` (max_length 127 + one pad), written against the tokenizer call
        that transformers 5 keeps (``batch_encode_plus`` is gone there)."""
        torch = self._torch
        tok = self._hf_tok(texts, max_length=127, padding="max_length", truncation=True,
                           add_special_tokens=True, return_token_type_ids=False, return_tensors="pt")
        return torch.nn.functional.pad(tok["input_ids"], (0, 1), value=self._hf_tok.pad_token_id)

    def encode_batch(self, batch) -> np.ndarray:
        self._ensure()
        with self._torch.inference_mode():
            feats = self._model.encode_image(batch.to(self._device), proj_contrast=True, normalize=True)
        return feats.float().cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self._ensure()
        with self._torch.inference_mode():
            feats = self._model.encode_text(self._tokenize(texts).to(self._device), normalize=True)
        return feats.float().cpu().numpy()
