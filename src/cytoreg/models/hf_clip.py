"""CLIP-style models published in the transformers format (PLIP ``vinid/plip``,
``openai/clip-vit-*``, SigLIP / MedSigLIP ``google/medsiglip-448``): ``AutoModel`` +
``AutoProcessor``, ``get_image_features`` / ``get_text_features``. The zero-shot probabilities
follow the model's own head: softmax over labels of ``logit_scale`` × cosine for CLIP, and for
SigLIP (a model with ``logit_bias``) the per-label sigmoid of ``logit_scale`` × cosine +
``logit_bias`` it was trained with (these do not sum to 1; argmax is the same). transformers and
torch are imported only in :meth:`load`."""
from __future__ import annotations

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import Embedder
from cytoreg.models.weights import hub_identity, hub_missing, hub_properties, pick_device, precision_dtype


def _features(out):
    """transformers 4 returns a tensor; 5 returns a model output whose pooler_output is projected."""
    return out if hasattr(out, "norm") else out.pooler_output


class HFCLIP(Embedder):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            **hub_properties("vinid/plip"),
            "precision": {"enum": ["fp32", "fp16", "bf16"], "description": "on GPU; CPU always runs fp32"},
            "text_padding": {"enum": ["longest", "max_length"],
                             "description": "max_length for SigLIP models, which were trained on texts padded to it"},
            "max_length": {"type": "integer", "minimum": 1, "description": "text length (tokens) with text_padding"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id: str = self.params["model"]
        self._model = None

    def weights_identity(self) -> str:
        return hub_identity(self.model_id, self.params.get("revision"))

    def load(self) -> None:
        try:
            import torch
            from transformers import AutoModel, AutoProcessor
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs transformers and torch: pip install 'cytoreg[hf]' ({exc})") from exc
        device = pick_device(self.device)
        dtype = precision_dtype(torch, self.params.get("precision"), device)
        hf_logging.disable_progress_bar()
        kwargs = {"revision": self.params["revision"]} if "revision" in self.params else {}
        from cytoreg.models.remote_code import refuse_untrusted

        refuse_untrusted(self.spec, self.model_id, self.params.get("revision"))  # no silent built-in stand-in
        try:
            model = AutoModel.from_pretrained(self.model_id, dtype=dtype, **kwargs)
            processor = AutoProcessor.from_pretrained(self.model_id, **kwargs)
        except (OSError, ValueError) as exc:
            from cytoreg.models.check import how_to_get

            hint = how_to_get(self.spec, self.model_id)  # the one wording (licence, login, download)
            raise hub_missing(self.name, self.model_id, "", hint, exc) from exc
        if not hasattr(model, "get_image_features"):
            raise ModelLoadError(f"model '{self.name}': {self.model_id} loads as {type(model).__name__}, which has no "
                                 "get_image_features; the hf_clip adapter needs a CLIP-style dual encoder")
        self._model = model.to(device).eval()
        self._processor, self._torch, self._device, self._dtype = processor, torch, device, dtype

    def _ensure(self) -> None:
        if self._model is None:
            self.load()

    def preprocess(self, image):
        self._ensure()
        return self._processor.image_processor(images=image, return_tensors="pt")["pixel_values"][0]

    def encode_batch(self, batch) -> np.ndarray:
        self._ensure()
        torch = self._torch
        with torch.inference_mode():
            f = _features(self._model.get_image_features(pixel_values=batch.to(self._device, dtype=self._dtype)))
            f = torch.nn.functional.normalize(f.float(), dim=-1)
        return f.cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self._ensure()
        torch = self._torch
        kw: dict = {"padding": self.params.get("text_padding", "longest"), "truncation": True}
        if "max_length" in self.params:
            kw["max_length"] = int(self.params["max_length"])
        tok = self._processor.tokenizer(texts, return_tensors="pt", **kw).to(self._device)
        with torch.inference_mode():
            f = _features(self._model.get_text_features(**tok))
            f = torch.nn.functional.normalize(f.float(), dim=-1)
        return f.cpu().numpy()

    def logit_scale(self) -> float:
        self._ensure()
        return float(self._model.logit_scale.exp().item())

    def head(self) -> str:
        self._ensure()
        return "sigmoid" if getattr(self._model, "logit_bias", None) is not None else "softmax"

    def zero_shot_probs(self, image_emb: np.ndarray, class_emb: np.ndarray) -> np.ndarray:
        if self.head() == "softmax":
            return super().zero_shot_probs(image_emb, class_emb)
        bias = float(self._model.logit_bias.float().reshape(-1)[0].item())
        logits = self.logit_scale() * image_emb @ class_emb.T + bias
        return 1.0 / (1.0 + np.exp(-logits))

    def close(self) -> None:
        self._model = None
