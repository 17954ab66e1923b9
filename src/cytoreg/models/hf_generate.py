"""Local image-text-to-text models through transformers: ``AutoProcessor`` +
``AutoModelForImageTextToText`` (LLaVA, LLaVA-NeXT/OneVision, Mllama / Llama-3.2-Vision,
IDEFICS 1-3, SmolVLM, Qwen2-VL, …). Each request is rendered the way its model family takes it
(:mod:`cytoreg.models.hf_families`: the chat template with images grouped per request, or
IDEFICS's interleaved list) and generated in left-padded batches. ``trust_remote_code`` is
passed only when the model spec sets it. torch/transformers are imported only in :meth:`load`."""
from __future__ import annotations

from typing import Sequence

from cytoreg.errors import CytoregError, ModelLoadError
from cytoreg.finetune.lora import with_adapter
from cytoreg.models.base import ChatRequest, Generator, PermanentError, Response
from cytoreg.models.weights import hub_identity, hub_missing, hub_properties, pick_device


class HFGenerator(Generator):
    mode = "batched"
    supports_remote_code = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            **hub_properties(),
            "dtype": {"enum": ["auto", "fp32", "fp16", "bf16"], "description": "on GPU; CPU runs fp32"},
            "device_map": {"type": "string", "description": "e.g. auto (accelerate) for models larger than one GPU"},
            "load_in_8bit": {"type": "boolean", "description": "bitsandbytes 8-bit (seed B's IDEFICS-80B)"},
            "chat_template": {"type": "string", "description": "Jinja template overriding the processor's"},
            "lora": {"type": "string", "description": "a peft LoRA adapter folder applied on load (cytoreg finetune)"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id: str = self.params["model"]
        self._model = None

    def weights_identity(self) -> str:
        return hub_identity(self.model_id, self.params.get("revision"))

    def load(self) -> None:
        if self._model is None:
            load_hf(self)

    def _render(self, request: ChatRequest):
        """The request as the family's processor takes it (prompt + images in order)."""
        self.load()
        r = self._family.render(request)
        return r.prompt, r.images

    def generate(self, request: ChatRequest) -> Response:
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: Sequence[ChatRequest]) -> list[Response]:
        """Each request rendered alone (a template's refusal or an image that does not decode fails
        only that request), then one padded batch per image count, falling back to one request at
        a time if a batch fails."""
        self.load()
        out: list[Response | None] = [None] * len(requests)
        rendered, index = [], []
        for i, r in enumerate(requests):  # a request the template refuses or an image that does not decode fails alone
            try:
                rendered.append(self._family.render(r))
                index.append(i)
            except (PermanentError, CytoregError) as exc:
                out[i] = Response(error=f"{type(exc).__name__}: {exc}")
        for ks in image_count_groups(rendered):
            for k, resp in zip(ks, self._generate_group([rendered[k] for k in ks], [requests[index[k]] for k in ks])):
                out[index[k]] = resp
        return out  # type: ignore[return-value]

    def _generate_group(self, rendered: list, requests: Sequence[ChatRequest]) -> list[Response]:
        """One padded batch; if it fails, each request alone, so a bad input fails only itself."""
        try:
            return self._generate(rendered, requests)
        except Exception as exc:
            if len(requests) == 1:  # named here, so the other image-count groups keep their answers
                return [Response(error=f"{type(exc).__name__}: {exc}")]
        out = []
        for r, req in zip(rendered, requests):
            try:
                out.append(self._generate([r], [req])[0])
            except Exception as exc:  # this request's own failure (its image, its length), named
                out.append(Response(error=f"{type(exc).__name__}: {exc}"))
        return out

    def _generate(self, rendered: list, requests: Sequence[ChatRequest]) -> list[Response]:
        torch = self._torch
        gen = dict(requests[0].generation)
        inputs = to_device(self._family.encode(rendered), self._device, self._model)
        kwargs = {"max_new_tokens": int(gen.get("max_tokens", 256)), **self._family.generate_kwargs()}
        temperature = float(gen.get("temperature", 0) or 0)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
            if "top_k" in gen:
                kwargs["top_k"] = int(gen["top_k"])
            if "top_p" in gen:
                kwargs["top_p"] = float(gen["top_p"])
            # one seed per batch, from the spec seed and the tries in it: reruns draw the same samples
            torch.manual_seed(int(gen.get("seed", 0)) * 1000 + min(r.try_index for r in requests))
        else:  # greedy, whatever the checkpoint's generation_config says (Llama-3.2-Vision's samples)
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
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


def load_hf(adapter) -> None:
    """Load processor + model for an ``hf`` / ``hf_hidden`` adapter (same path, same errors) and
    pick the model's family; sets ``_model``, ``_processor``, ``_family``, ``_torch``, ``_device``."""
    from cytoreg.models.hf_families import family_for

    try:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ModelLoadError(f"model '{adapter.name}' needs transformers and torch: pip install 'cytoreg[hf]' ({exc})") from exc
    hf_logging.disable_progress_bar()
    params = adapter.params
    device = pick_device(adapter.device)
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "auto": "auto"}
    dtype = torch.float32 if device == "cpu" else dtypes[params.get("dtype", "bf16")]
    trust = bool(adapter.spec.get("trust_remote_code", False))
    kwargs: dict = {"trust_remote_code": trust}
    if "revision" in params:
        kwargs["revision"] = params["revision"]
    model_kwargs = dict(kwargs, dtype=dtype)
    if params.get("device_map"):
        model_kwargs["device_map"] = params["device_map"]
    if params.get("load_in_8bit"):
        from transformers import BitsAndBytesConfig

        model_kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    from cytoreg.models.remote_code import refuse_untrusted

    refuse_untrusted(adapter.spec, adapter.model_id, params.get("revision"))  # transformers would substitute its own class
    try:
        processor = AutoProcessor.from_pretrained(adapter.model_id, **kwargs)
        model = AutoModelForImageTextToText.from_pretrained(adapter.model_id, **model_kwargs)
    except ImportError as exc:  # e.g. bitsandbytes for load_in_8bit, or a model's own extra package
        raise ModelLoadError(f"model '{adapter.name}': loading {adapter.model_id} needs a package that is not "
                             f"installed: {exc}. Install it, or drop the option that needs it from "
                             f"{adapter.spec.path}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise hub_missing(adapter.name, adapter.model_id, " as an image-text-to-text model",
                          params.get("download_hint"), exc) from exc
    model = with_adapter(model, params, adapter.name, adapter.spec.path)  # params.lora (cytoreg.finetune.lora)
    if "device_map" not in model_kwargs and "quantization_config" not in model_kwargs:
        model = model.to(device)
    tok = getattr(processor, "tokenizer", None)
    if tok is not None:
        tok.padding_side = "left"  # batched generation: the new tokens start at the same column
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    if params.get("chat_template"):
        processor.chat_template = params["chat_template"]
    adapter._family = family_for(model, processor, adapter.name, adapter.model_id, adapter.spec.path)
    adapter._model, adapter._processor, adapter._torch = model.eval(), processor, torch
    adapter._device = model.device if "device_map" in model_kwargs or "quantization_config" in model_kwargs else device


def image_count_groups(rendered: Sequence) -> list[list[int]]:
    """Positions of the rendered requests grouped by their number of images, one forward pass each:
    a processor pads the requests with fewer images with blank ones, and their masked
    cross-attention still moves Mllama's logits (by ~3e-3 on the twin), so a request must get the
    same answer in any batch."""
    groups: dict[int, list[int]] = {}
    for k, r in enumerate(rendered):
        groups.setdefault(len(r.images), []).append(k)
    return list(groups.values())


def to_device(inputs, device, model):
    """The processor's batch on the model's device, pixel values in the model's dtype."""
    inputs = inputs.to(device)
    dtype = getattr(model, "dtype", None)
    for key in ("pixel_values",):
        if key in inputs and dtype is not None and inputs[key].is_floating_point():
            inputs[key] = inputs[key].to(dtype)
    return inputs
