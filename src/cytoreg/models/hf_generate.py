"""Local image-text-to-text models through transformers: ``AutoProcessor`` +
``AutoModelForImageTextToText`` (LLaVA, LLaVA-NeXT/OneVision, Mllama / Llama-3.2-Vision,
IDEFICS 1-3, SmolVLM, Qwen2-VL, …). Requests are rendered with the processor's chat template
and generated in padded batches. ``trust_remote_code`` is passed only when the model spec sets
it. torch/transformers are imported only in :meth:`load`."""
from __future__ import annotations

from typing import Sequence

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import ChatRequest, Generator, ImagePart, Response, TextPart
from cytoreg.models.weights import hub_identity, hub_missing, pick_device
from cytoreg.tasks.samples import open_image


class HFGenerator(Generator):
    mode = "batched"
    supports_remote_code = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            "model": {"type": "string", "description": "Hugging Face repo id or a local folder"},
            "revision": {"type": "string"},
            "dtype": {"enum": ["auto", "fp32", "fp16", "bf16"], "description": "on GPU; CPU runs fp32"},
            "device_map": {"type": "string", "description": "e.g. auto (accelerate) for models larger than one GPU"},
            "load_in_8bit": {"type": "boolean", "description": "bitsandbytes 8-bit (seed B's IDEFICS-80B)"},
            "chat_template": {"type": "string", "description": "Jinja template overriding the processor's"},
            "download_hint": {"type": "string"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id: str = self.params["model"]
        self._model = None

    def weights_identity(self) -> str:
        return hub_identity(self.model_id, self.params.get("revision"))

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs transformers and torch: pip install 'cytoreg[hf]' ({exc})") from exc
        hf_logging.disable_progress_bar()
        device = pick_device(self.device)
        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "auto": "auto"}
        dtype = torch.float32 if device == "cpu" else dtypes[self.params.get("dtype", "bf16")]
        trust = bool(self.spec.get("trust_remote_code", False))
        kwargs: dict = {"trust_remote_code": trust}
        if "revision" in self.params:
            kwargs["revision"] = self.params["revision"]
        model_kwargs = dict(kwargs, dtype=dtype)
        if self.params.get("device_map"):
            model_kwargs["device_map"] = self.params["device_map"]
        if self.params.get("load_in_8bit"):
            from transformers import BitsAndBytesConfig

            model_kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        try:
            processor = AutoProcessor.from_pretrained(self.model_id, **kwargs)
            model = AutoModelForImageTextToText.from_pretrained(self.model_id, **model_kwargs)
        except ImportError as exc:  # e.g. bitsandbytes for load_in_8bit, or a model's own extra package
            raise ModelLoadError(f"model '{self.name}': loading {self.model_id} needs a package that is not "
                                 f"installed: {exc}. Install it, or drop the option that needs it from "
                                 f"{self.spec.path}") from exc
        except (OSError, ValueError, KeyError) as exc:
            raise hub_missing(self.name, self.model_id, " as an image-text-to-text model",
                              self.params.get("download_hint"), exc) from exc
        if "device_map" not in model_kwargs:
            model = model.to(device)
        tok = getattr(processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # batched generation: the new tokens start at the same column
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
        if self.params.get("chat_template"):
            processor.chat_template = self.params["chat_template"]
        self._model, self._processor, self._torch, self._device = model.eval(), processor, torch, device

    def _render(self, request: ChatRequest) -> tuple[str, list]:
        """Our messages → the processor's chat format (image placeholders in place) + the images in order."""
        messages, images = [], []
        for m in request.messages:
            content = []
            for p in m.parts:
                if isinstance(p, TextPart):
                    content.append({"type": "text", "text": p.text})
                elif isinstance(p, ImagePart):
                    content.append({"type": "image"})
                    images.append(open_image(p.data(), str(p.image)))
            messages.append({"role": m.role, "content": content})
        prompt = self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return prompt, images

    def generate(self, request: ChatRequest) -> Response:
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: Sequence[ChatRequest]) -> list[Response]:
        """One padded batch; if it fails, each request alone, so a bad input fails only itself."""
        self.load()
        try:
            return self._generate_batch(requests)
        except Exception:
            if len(requests) == 1:
                raise
        out = []
        for r in requests:
            try:
                out.append(self._generate_batch([r])[0])
            except Exception as exc:  # this request's own failure (its image, its length), named
                out.append(Response(error=f"{type(exc).__name__}: {exc}"))
        return out

    def _generate_batch(self, requests: Sequence[ChatRequest]) -> list[Response]:
        torch = self._torch
        rendered = [self._render(r) for r in requests]
        gen = dict(requests[0].generation)
        images = [im for _, ims in rendered for im in ims]
        inputs = self._processor(text=[p for p, _ in rendered], images=images or None, padding=True,
                                 return_tensors="pt").to(self._device)
        kwargs = {"max_new_tokens": int(gen.get("max_tokens", 256))}
        temperature = float(gen.get("temperature", 0) or 0)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
            if "top_k" in gen:
                kwargs["top_k"] = int(gen["top_k"])
            if "top_p" in gen:
                kwargs["top_p"] = float(gen["top_p"])
            # one seed per batch, from the spec seed and the tries in it: reruns draw the same samples
            torch.manual_seed(int(gen.get("seed", 0)) * 1000 + min(r.try_index for r in requests))
        else:
            kwargs["do_sample"] = False
        with torch.inference_mode():
            out = self._model.generate(**inputs, **kwargs)
        new = out[:, inputs["input_ids"].shape[1]:]
        texts = self._processor.batch_decode(new, skip_special_tokens=True)
        usage = [{"prompt_tokens": int(m.sum()), "completion_tokens": int((n != self._pad_id()).sum())}
                 for m, n in zip(inputs["attention_mask"], new)]
        return [Response(text=t.strip(), usage=u) for t, u in zip(texts, usage)]

    def _pad_id(self) -> int:
        tok = getattr(self._processor, "tokenizer", None)
        return -1 if tok is None or tok.pad_token_id is None else int(tok.pad_token_id)

    def close(self) -> None:
        self._model = None
