"""Hidden states of a transformers image-text-to-text model as probe features (seed B: a
multimodal LLM's activations at chosen layers for a fixed prompt). One forward pass per batch
with ``output_hidden_states=True`` on the input the model's family builds
(:mod:`cytoreg.models.hf_families`: the chat template with the image and the prompt, or for
IDEFICS seed B's ``[image, prompt]``). Layer k is ``hidden_states[k]``: 1…L the decoder layers
(L after the final norm), 0 the family's first state, which is *not* the same thing everywhere
(LLaVA-like: embeddings with the image features in place; Mllama: token embeddings only; IDEFICS:
embeddings after the first gated cross-attention block). Poolings:

- ``mean``: mean over the real tokens that depend on the image (all real tokens where image
  features sit in the sequence; for cross-attention families the tokens from the first image on);
- ``last``: the last real token (what a decoder would predict from; seed B's choice);
- ``image_tokens``: mean over the positions holding image tokens (LLaVA-like families only).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import FeatureExtractor, PermanentError
from cytoreg.models.hf_generate import HFGenerator, load_hf, to_device
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
            "prompt": {"type": "string", "description": "text asked with each image (seed B: 'Question: What's on this image? Answer:')"},
            "layers": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
            "pooling": {"type": "array", "minItems": 1, "items": {"enum": list(POOLINGS)}},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id: str = self.params["model"]
        self._model = None

    def load(self) -> None:
        if self._model is not None:
            return
        load_hf(self)  # the same loading path (and errors) as generation
        if "image_tokens" in self.params.get("pooling", []) and self._family.cross_attention:
            self._family.image_token_mask(None)  # raises the family's explanation

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

    def extract_batch(self, batch: list) -> dict[str, np.ndarray]:
        self.load()
        torch = self._torch
        prompt = self.params.get("prompt", "What can you see on this image?")
        fam = self._family
        try:
            inputs = to_device(fam.encode_hidden(list(batch), prompt), self._device, self._model)
        except PermanentError as exc:
            raise ModelLoadError(f"model '{self.name}': {exc}; fix params.prompt or params.chat_template in "
                                 f"{self.spec.path}") from exc
        except (ValueError, TypeError, KeyError) as exc:  # the processor's own refusal, said without a traceback
            raise ModelLoadError(f"model '{self.name}': the processor of {self.model_id} refused the input "
                                 f"(prompt {prompt!r} with one image): {exc}") from exc
        with torch.inference_mode():
            out = self._model(**inputs, output_hidden_states=True)
        hs = out.hidden_states
        mask = inputs["attention_mask"].bool()
        sees = fam.sees_image(inputs)
        n_layers = len(hs) - 1
        feats: dict[str, np.ndarray] = {}
        for layer in self.params["layers"]:
            if layer > n_layers:
                raise ModelLoadError(f"model '{self.name}': layer {layer} asked for, but {self.model_id} has "
                                     f"{n_layers} layers (0 = {fam.layer_zero}); fix params.layers in "
                                     f"{self.spec.path}")
            h = hs[layer].float()
            for pool in self.params.get("pooling", ["mean"]):
                if pool == "mean":
                    m = sees.unsqueeze(-1).float()
                    v = (h * m).sum(1) / m.sum(1).clamp(min=1)
                elif pool == "last":
                    # the last real token of each row, whichever side the padding is on
                    pos = mask.shape[1] - 1 - mask.flip(1).int().argmax(1)
                    v = h[torch.arange(h.shape[0]), pos]
                else:
                    m = fam.image_token_mask(inputs).unsqueeze(-1).float()
                    if (m.sum(1) == 0).any():
                        raise ModelLoadError(f"model '{self.name}': no image tokens in the input ids; use mean or last")
                    v = (h * m).sum(1) / m.sum(1)
                feats[f"layer{layer}/{pool}"] = v.cpu().numpy()
        return feats

    def close(self) -> None:
        self._model = None
