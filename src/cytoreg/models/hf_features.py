"""Frozen image encoders in the transformers format (Phikon-v2 ``Dinov2Model``, DINOv3
``DINOv3ViTModel``, Hibou's remote-code DINOv2 with registers): ``AutoModel`` +
``AutoImageProcessor`` from the checkpoint, so the preprocessing is the published
``preprocessor_config.json``; the spec's ``preprocess`` states the card's numbers, and a checkpoint
whose processor disagrees is named on stderr (the checkpoint's processor is what runs). Pooling follows the
card: ``cls`` (``last_hidden_state[:, 0]``), ``pooler`` (``pooler_output``), or ``cls+mean`` (CLS ⊕
mean of the patch tokens after the ``num_register_tokens`` registers). A checkpoint that ships
its own code (``auto_map``) loads only under a spec with ``trust_remote_code``
(:mod:`cytoreg.models.remote_code`). torch / transformers are imported only in :meth:`load`."""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import FeatureExtractor
from cytoreg.models.remote_code import refuse_untrusted
from cytoreg.models.weights import hub_identity, hub_missing, hub_properties, pick_device, precision_dtype


def processor_numbers(proc: Any) -> dict:
    """What an image processor does, in the spec's terms (resize, crop, mean, std)."""
    size = getattr(proc, "size", None) or {}
    crop = getattr(proc, "crop_size", None) or {}
    do_crop = bool(getattr(proc, "do_center_crop", False))
    resize = size.get("shortest_edge") or size.get("height")
    return {"resize": int(resize) if resize else None, "square": "height" in size,
            "crop": int(crop.get("height")) if do_crop and crop else None,
            "mean": [round(float(v), 6) for v in proc.image_mean], "std": [round(float(v), 6) for v in proc.image_std]}


class HFFeatures(FeatureExtractor):
    supports_remote_code = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            **hub_properties(),
            "pooling": {"enum": ["cls", "pooler", "cls+mean"]},
            "num_register_tokens": {"type": "integer", "minimum": 0,
                                    "description": "register tokens after CLS, excluded from the patch mean"},
            "preprocess": {"type": "object", "additionalProperties": False,
                           "description": "the model card's numbers; the checkpoint's processor must agree",
                           "properties": {"resize": {"type": "integer"}, "square": {"type": "boolean"},
                                          "crop": {"type": ["integer", "null"]},
                                          "mean": {"type": "array", "items": {"type": "number"}},
                                          "std": {"type": "array", "items": {"type": "number"}}}},
            "precision": {"enum": ["fp32", "fp16", "bf16"], "description": "on GPU; CPU always runs fp32"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id: str = self.params["model"]
        self._model = None

    def weights_identity(self) -> str:
        return hub_identity(self.model_id, self.params.get("revision"))

    def feature_keys(self) -> list[str]:
        return [self.params.get("pooling", "cls")]

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
            from transformers import AutoImageProcessor, AutoModel
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs transformers and torch: pip install 'cytoreg[hf]' ({exc})") from exc
        hf_logging.disable_progress_bar()
        device = pick_device(self.device)
        dtype = precision_dtype(torch, self.params.get("precision"), device)
        kwargs: dict = {"trust_remote_code": bool(self.spec.get("trust_remote_code", False))}
        if "revision" in self.params:
            kwargs["revision"] = self.params["revision"]
        from cytoreg.models.check import how_to_get

        hint = how_to_get(self.spec, self.model_id)  # the one wording (licence, login, download)
        refuse_untrusted(self.spec, self.model_id, self.params.get("revision"))
        try:
            processor = AutoImageProcessor.from_pretrained(self.model_id, **kwargs)
            model = AutoModel.from_pretrained(self.model_id, dtype=dtype, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise hub_missing(self.name, self.model_id, " as an image encoder", hint, exc) from exc
        self._check_processor(processor)
        self._model = model.to(device).eval()
        self._processor, self._torch, self._device, self._dtype = processor, torch, device, dtype

    def _check_processor(self, processor: Any) -> None:
        want = self.params.get("preprocess")
        if not want:
            return
        have = processor_numbers(processor)
        bad = [f"{k}: spec {want[k]}, checkpoint {have[k]}" for k in want
               if k in have and (np.abs(np.subtract(want[k], have[k])).max() > 1e-4
                                 if isinstance(want[k], list) else want[k] != have[k])]
        if bad:
            print(f"cytoreg: model '{self.name}': the image processor of {self.model_id} differs from the model card's "
                  f"numbers in {self.spec.path} ({'; '.join(bad)}); the checkpoint's processor is used", file=sys.stderr)

    def preprocess(self, image: Any) -> Any:
        if self._model is None:
            self.load()
        return self._processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def extract_batch(self, batch: Any) -> dict[str, np.ndarray]:
        torch = self._torch
        pooling = self.params.get("pooling", "cls")
        with torch.inference_mode():
            out = self._model(pixel_values=batch.to(self._device, dtype=self._dtype))
            tokens = out.last_hidden_state
            if pooling == "pooler":
                f = out.pooler_output
            elif pooling == "cls+mean":
                start = 1 + int(self.params.get("num_register_tokens", 0))
                f = torch.cat([tokens[:, 0], tokens[:, start:].mean(dim=1)], dim=-1)
            else:
                f = tokens[:, 0]
        return {pooling: f.float().cpu().numpy()}

    def close(self) -> None:
        self._model = None
