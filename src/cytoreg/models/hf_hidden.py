"""Hidden states of a transformers image-text-to-text model as probe features (seed B: a
multimodal LLM's activations at chosen layers for a fixed prompt). One forward pass per batch
with ``output_hidden_states=True``; for every requested layer (1 = first transformer block, as
``hidden_states[1]``; 0 = the embeddings) and pooling:

- ``mean``: mean over the real (non-padding) tokens;
- ``last``: the last real token (what a decoder would predict from);
- ``image_tokens``: mean over the positions holding image tokens.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import FeatureExtractor
from cytoreg.models.hf_generate import HFGenerator
from cytoreg.models.weights import hub_identity

POOLINGS = ("mean", "last", "image_tokens")


class HFHiddenStates(FeatureExtractor):
    supports_remote_code = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model", "layers"],
        "properties": {
            **HFGenerator.params_schema["properties"],
            "prompt": {"type": "string", "description": "text asked with each image (seed B: 'What can you see on this image?')"},
            "layers": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
            "pooling": {"type": "array", "minItems": 1, "items": {"enum": list(POOLINGS)}},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id: str = self.params["model"]
        self._model = None

    load = HFGenerator.load  # the same loading path (and errors) as generation
    check = HFGenerator.check

    def weights_identity(self) -> str:
        return hub_identity(self.model_id, self.params.get("revision"))

    def feature_keys(self) -> list[str]:
        return [f"layer{layer}/{pool}" for layer in self.params["layers"]
                for pool in self.params.get("pooling", ["mean"])]

    def preprocess(self, image: Any) -> Any:
        return image.convert("RGB")

    def collate(self, items: list) -> Any:
        return list(items)

    def _prompt(self) -> str:
        text = self.params.get("prompt", "What can you see on this image?")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        return self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _image_token_id(self) -> int:
        cfg = self._model.config
        for name in ("image_token_id", "image_token_index"):
            if getattr(cfg, name, None) is not None:
                return int(getattr(cfg, name))
        raise ModelLoadError(f"model '{self.name}': pooling 'image_tokens' needs the config's image_token_id, which "
                             f"{self.model_id} does not have; use mean or last")

    def extract_batch(self, batch: list) -> dict[str, np.ndarray]:
        self.load()
        torch = self._torch
        prompt = self._prompt()
        inputs = self._processor(text=[prompt] * len(batch), images=batch, padding=True,
                                 return_tensors="pt").to(self._device)
        with torch.inference_mode():
            out = self._model(**inputs, output_hidden_states=True)
        hs = out.hidden_states
        mask = inputs["attention_mask"].bool()
        n_layers = len(hs) - 1
        feats: dict[str, np.ndarray] = {}
        for layer in self.params["layers"]:
            if layer > n_layers:
                raise ModelLoadError(f"model '{self.name}': layer {layer} asked for, but {self.model_id} has "
                                     f"{n_layers} layers (0 = embeddings); fix params.layers in {self.spec.path}")
            h = hs[layer].float()
            for pool in self.params.get("pooling", ["mean"]):
                if pool == "mean":
                    m = mask.unsqueeze(-1).float()
                    v = (h * m).sum(1) / m.sum(1).clamp(min=1)
                elif pool == "last":
                    # the last real token of each row, whichever side the padding is on
                    pos = mask.shape[1] - 1 - mask.flip(1).int().argmax(1)
                    v = h[torch.arange(h.shape[0]), pos]
                else:
                    m = (inputs["input_ids"] == self._image_token_id()).unsqueeze(-1).float()
                    if (m.sum(1) == 0).any():
                        raise ModelLoadError(f"model '{self.name}': no image tokens in the input ids; use mean or last")
                    v = (h * m).sum(1) / m.sum(1)
                feats[f"layer{layer}/{pool}"] = v.cpu().numpy()
        return feats

    def close(self) -> None:
        self._model = None
