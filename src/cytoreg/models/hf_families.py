"""How each transformers VLM family wants its input: the prompt, where the images go, which
tokens stop generation, and what its hidden states are. The ``hf`` and ``hf_hidden`` adapters
pick the family from the loaded config (``model_type``), never from the spec's name.

Families:

- :class:`ChatTemplateFamily` (LLaVA, LLaVA-NeXT/OneVision, Qwen2/2.5-VL, Idefics2/3, SmolVLM,
  Gemma 3, …): the processor's chat template renders the messages with one image placeholder per
  image in place; the images go to the processor grouped per request (``images=[[a, b], [c]]``),
  which every one of these processors reads as "these images belong to that prompt".
- :class:`MllamaFamily` (Llama-3.2-Vision): the same, with the model's own chat template (it
  refuses a system message next to images: the refusal is reported, not worked around).
- :class:`IdeficsFamily` (IDEFICS v1, 9b/80b and their instruct versions): no chat template
  exists for these checkpoints. The request becomes IDEFICS's interleaved list of texts and images
  in the instruct format of the model card (``"User:" … "<end_of_utterance>" "\\nAssistant:"``;
  ``<end_of_utterance>`` only where the tokenizer knows it, i.e. the instruct checkpoints), with
  the images in the order they appear (few-shot examples interleaved as seed B prompts them).

Hidden states (``output_hidden_states=True``) are a tuple of ``n_layers + 1`` tensors; what
index 0 and the pooled tokens are differs per family and is written on each class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import ChatRequest, ImagePart, PermanentError, TextPart
from cytoreg.tasks.samples import open_image


@dataclass
class Rendered:
    """One request as the processor takes it: ``prompt`` (text, or IDEFICS's list of texts and
    images) and the images in prompt order."""

    prompt: Any
    images: list


class Family:
    name: ClassVar[str] = ""
    #: images reach the text through cross-attention (one placeholder token per image) rather
    #: than as image tokens in the sequence
    cross_attention: ClassVar[bool] = False
    layer_zero: ClassVar[str] = ""

    def __init__(self, model: Any, processor: Any, adapter_name: str, model_id: str):
        self.model, self.processor = model, processor
        self.adapter_name, self.model_id = adapter_name, model_id

    # -- generation ----------------------------------------------------------------------
    def render(self, request: ChatRequest) -> Rendered:
        raise NotImplementedError

    def encode(self, rendered: Sequence[Rendered]) -> Any:
        """A padded batch (left padding: the tokenizer's side is set at load)."""
        raise NotImplementedError

    def generate_kwargs(self) -> dict:
        return {}

    # -- hidden states -------------------------------------------------------------------
    def encode_hidden(self, images: list, prompt: str) -> Any:
        """The batch for hidden-state extraction: each image with the same prompt."""
        raise NotImplementedError

    def sees_image(self, inputs: Any) -> Any:
        """Bool [batch, seq]: the real tokens whose state depends on the image (pooled by ``mean``)."""
        return inputs["attention_mask"].bool()

    def image_token_mask(self, inputs: Any) -> Any:
        """Bool [batch, seq]: the positions holding image features (pooled by ``image_tokens``)."""
        cfg = self.model.config
        for name in ("image_token_id", "image_token_index"):
            if getattr(cfg, name, None) is not None:
                return inputs["input_ids"] == int(getattr(cfg, name))
        raise ModelLoadError(f"model '{self.adapter_name}': pooling 'image_tokens' needs the config's image_token_id, "
                             f"which {self.model_id} does not have; use mean or last")


def _images(request: ChatRequest) -> list:
    return [open_image(p.data(), str(p.image)) for p in request.images()]


class ChatTemplateFamily(Family):
    """Processors with a chat template that expands image placeholders into image tokens.

    Hidden states: index 0 is the input embeddings with the projected image features already in
    place of the image tokens; index k (1…L) is the output of decoder layer k, index L after the
    final norm. ``image_tokens`` pools the positions of ``config.image_token_id``.
    """

    name = "chat_template"
    layer_zero = "input embeddings, image features in place of the image tokens"

    def _messages(self, request: ChatRequest) -> list[dict]:
        messages = []
        for m in request.messages:
            content = []
            for p in m.parts:
                if isinstance(p, TextPart):
                    content.append({"type": "text", "text": p.text})
                elif isinstance(p, ImagePart):
                    content.append({"type": "image"})
            messages.append({"role": m.role, "content": content})
        return messages

    def _template(self, messages: list[dict]) -> str:
        try:
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # jinja's raise_exception in the model's own template, e.g. Mllama's
            if type(exc).__name__ in ("TemplateError", "TemplateSyntaxError", "UndefinedError"):
                raise PermanentError(f"the chat template of {self.model_id} refuses this request: {exc}") from exc
            raise

    def render(self, request: ChatRequest) -> Rendered:
        return Rendered(self._template(self._messages(request)), _images(request))

    def _call(self, texts: list[str], images: list[list]) -> Any:
        tok = self.processor.tokenizer
        kwargs: dict = {"padding": True, "return_tensors": "pt"}
        if tok.bos_token and all(t.startswith(tok.bos_token) for t in texts):
            kwargs["add_special_tokens"] = False  # the template wrote BOS already; no second one
        return self.processor(text=texts, images=images if any(images) else None, **kwargs)

    def encode(self, rendered: Sequence[Rendered]) -> Any:
        return self._call([r.prompt for r in rendered], [r.images for r in rendered])

    def encode_hidden(self, images: list, prompt: str) -> Any:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self._template(messages)
        return self._call([text] * len(images), [[im] for im in images])


class MllamaFamily(ChatTemplateFamily):
    """Llama-3.2-Vision: ``<|image|>`` is one token per image; the image enters through the
    cross-attention layers (``text_config.cross_attention_layers``), which count as decoder layers.

    Hidden states: index 0 is the token embeddings alone (no image yet); index k is the output of
    decoder layer k (cross-attention layers included), index L after the final norm. ``mean``
    pools the tokens from the first ``<|image|>`` on (the processor's ``cross_attention_mask``);
    the tokens before it do not depend on the image. ``image_tokens`` does not apply.
    """

    name = "mllama"
    cross_attention = True
    layer_zero = "token embeddings (the image enters at the cross-attention layers)"

    def sees_image(self, inputs: Any) -> Any:
        cam = inputs["cross_attention_mask"]  # [batch, seq, n_images, n_tiles]
        return cam.flatten(2).any(-1) & inputs["attention_mask"].bool()

    def image_token_mask(self, inputs: Any) -> Any:
        raise ModelLoadError(f"model '{self.adapter_name}': pooling 'image_tokens' does not apply to {self.model_id} "
                             "(Mllama: one <|image|> token per image, the image enters through cross-attention); "
                             "use mean or last")


class IdeficsFamily(Family):
    """IDEFICS v1 (open Flamingo): gated cross-attention before every ``cross_layer_interval``-th
    decoder layer; each text token attends to the latest image before it.

    Generation prompt (model card of the instruct checkpoints): ``User:`` + the user's texts and
    images in order + ``<end_of_utterance>``, a new line, ``Assistant:``; generation stops at
    ``<end_of_utterance>`` or ``</s>`` and never emits ``<image>`` / ``<fake_token_around_image>``.
    A system message is written as plain text before the first turn (IDEFICS has no system role).

    Hidden states: seed B's input, ``[image, prompt]`` with no turn markers. Index 0 is the input
    of decoder layer 0, i.e. the embeddings *after* the first gated cross-attention block (already
    image-dependent); index k (1…L-1) is the output of decoder layer k, before the next block's
    cross-attention; index L after the final norm. Seed B's ``hidden_states[1:][l]`` is layer l+1
    here. ``mean`` pools the tokens that attend to an image (the processor's
    ``image_attention_mask``); ``image_tokens`` does not apply (one ``<image>`` token per image).
    """

    name = "idefics"
    cross_attention = True
    layer_zero = "embeddings after the first gated cross-attention block (already image-dependent)"

    EOU = "<end_of_utterance>"

    def __init__(self, model: Any, processor: Any, adapter_name: str, model_id: str):
        super().__init__(model, processor, adapter_name, model_id)
        tok = processor.tokenizer
        self.instruct = self.EOU in tok.get_vocab()  # the instruct tokenizers add it (id 32002)

    def _roles(self, role: str) -> str:
        return {"user": "User:", "assistant": "Assistant:"}.get(role, "")

    def render(self, request: ChatRequest) -> Rendered:
        items: list = []
        images: list = []

        def text(s: str) -> None:
            if items and isinstance(items[-1], str):
                items[-1] += s
            else:
                items.append(s)

        eou = self.EOU if self.instruct else ""
        for m in request.messages:
            if m.role == "system":
                text("".join(p.text for p in m.parts if isinstance(p, TextPart)) + "\n")
                continue
            if items and not (isinstance(items[-1], str) and items[-1].endswith("\n")):
                text("\n")  # turns are separated by a new line, as in the model card
            text(self._roles(m.role) or f"{m.role.capitalize()}:")
            for k, p in enumerate(m.parts):
                if isinstance(p, TextPart):
                    text((" " if k == 0 else "") + p.text)
                elif isinstance(p, ImagePart):
                    im = open_image(p.data(), str(p.image))
                    items.append(im)
                    images.append(im)
            text(eou)
        text("\nAssistant:")
        return Rendered(items, images)

    def _call(self, prompts: list[list]) -> Any:
        return self.processor(text=prompts, add_end_of_utterance_token=False, padding=True, return_tensors="pt")

    def encode(self, rendered: Sequence[Rendered]) -> Any:
        return self._call([r.prompt for r in rendered])

    def generate_kwargs(self) -> dict:
        tok = self.processor.tokenizer
        stop = [tok.eos_token_id]
        if self.instruct:
            stop.insert(0, tok.convert_tokens_to_ids(self.EOU))
        bad = [[tok.convert_tokens_to_ids(t)] for t in ("<image>", "<fake_token_around_image>")]
        return {"eos_token_id": stop, "bad_words_ids": bad}

    def encode_hidden(self, images: list, prompt: str) -> Any:
        return self._call([[im, prompt] for im in images])

    def sees_image(self, inputs: Any) -> Any:
        return inputs["image_attention_mask"].bool().any(-1) & inputs["attention_mask"].bool()

    def image_token_mask(self, inputs: Any) -> Any:
        raise ModelLoadError(f"model '{self.adapter_name}': pooling 'image_tokens' does not apply to {self.model_id} "
                             "(IDEFICS: one <image> token per image, the image enters through gated cross-attention); "
                             "use mean or last")


FAMILIES: dict[str, type[Family]] = {"idefics": IdeficsFamily, "mllama": MllamaFamily}


def family_for(model: Any, processor: Any, adapter_name: str, model_id: str, spec_path: Any = "") -> Family:
    """The family of a loaded model, from its config's ``model_type``; a processor without a chat
    template for a chat-template family is an error naming the spec field that fixes it."""
    model_type = getattr(model.config, "model_type", "")
    cls = FAMILIES.get(model_type, ChatTemplateFamily)
    if cls is not IdeficsFamily and not getattr(processor, "chat_template", None):
        raise ModelLoadError(f"model '{adapter_name}': the processor of {model_id} (model_type {model_type!r}) has no "
                             f"chat template; put the checkpoint's prompt format as a Jinja template in "
                             f"params.chat_template of {spec_path}")
    if getattr(processor, "tokenizer", None) is None:
        raise ModelLoadError(f"model '{adapter_name}': {model_id} loaded a {type(processor).__name__} without a "
                             "tokenizer; the hf adapters need a processor that holds one")
    return cls(model, processor, adapter_name, model_id)
