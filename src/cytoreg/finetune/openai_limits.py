"""OpenAI's documented limits for (vision) fine-tuning files, checked before anything is uploaded,
and the token / cost estimate ``--check`` prints.

Sources (OpenAI platform documentation):
- Vision fine-tuning guide, https://platform.openai.com/docs/guides/vision-fine-tuning (also
  developers.openai.com/api/docs/guides/vision-fine-tuning), "Image data requirements": a training
  file holds at most 50,000 examples that contain images; at most 10 images per example; each
  image at most 10 MB; JPEG, PNG or WEBP; RGB or RGBA mode; no images in assistant messages.
- Supervised fine-tuning guide, https://platform.openai.com/docs/guides/fine-tuning: at least 10
  training examples; "Token limits": 65,536 tokens per training example for gpt-4o-2024-08-06
  (gpt-4o-mini-2024-07-18: 65,536).
- Files API reference, https://platform.openai.com/docs/api-reference/files/create: a file can be
  at most 512 MB.
- Vision guide, https://platform.openai.com/docs/guides/vision ("Calculating costs"): an image at
  detail "low" costs 85 tokens; at "high" it is fit into 2048 x 2048, its short side scaled down
  to 768, and costs 85 + 170 per 512-px tile (2048 x 4096: 1105 tokens; 1024 x 1024: 765).
- Pricing, https://openai.com/api/pricing (fine-tuning, Aug 2024): training gpt-4o-2024-08-06
  $25.00 / 1M tokens, gpt-4o-mini-2024-07-18 $3.00 / 1M tokens. Set
  ``finetune.price_per_million_tokens`` in the model spec when the price differs.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field

MIN_EXAMPLES = 10
MAX_IMAGE_EXAMPLES = 50_000
MAX_IMAGES_PER_EXAMPLE = 10
MAX_IMAGE_BYTES = 10 * 1000 * 1000
MAX_FILE_BYTES = 512 * 1000 * 1000
IMAGE_FORMATS = {"image/jpeg", "image/png", "image/webp"}
IMAGE_MODES = {"RGB", "RGBA"}
MAX_TOKENS_PER_EXAMPLE = {"gpt-4o-2024-08-06": 65_536, "gpt-4o-mini-2024-07-18": 65_536}
DEFAULT_MAX_TOKENS = 65_536
PRICE_PER_MILLION = {"gpt-4o-2024-08-06": 25.0, "gpt-4o-mini-2024-07-18": 3.0}
AUTO_EPOCHS_ESTIMATE = 3  # "auto" lets OpenAI choose from the data size; the estimate assumes 3


@dataclass
class FileReport:
    """What one JSONL file holds and what it would cost (tokens are an estimate: text ≈ bytes / 4)."""
    examples: int = 0
    images: int = 0
    bytes: int = 0
    tokens: int = 0                      # one pass over the file
    max_example_tokens: int = 0
    problems: list[str] = field(default_factory=list)


def image_tokens(width: int, height: int, detail: str) -> int:
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))  # the guide's examples only scale down
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def text_tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / 4)


def check_lines(lines: list[dict], base: str, where: str, training: bool = True) -> FileReport:
    """Every documented limit, each violation named by line; token count per example (the minimum
    of 10 examples is the training file's)."""
    from PIL import Image

    rep = FileReport(examples=len(lines))
    limit = MAX_TOKENS_PER_EXAMPLE.get(base, DEFAULT_MAX_TOKENS)
    image_examples = 0
    for i, line in enumerate(lines, 1):
        toks, n_img = 3, 0
        msgs = line.get("messages") or []
        if not msgs or msgs[-1].get("role") != "assistant" or not isinstance(msgs[-1].get("content"), str):
            rep.problems.append(f"{where} line {i}: the last message must be the assistant's text answer")
        for m in msgs:
            toks += 4
            content = m.get("content")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else (content or [])
            for p in parts:
                if p.get("type") == "text":
                    toks += text_tokens(p["text"])
                    continue
                n_img += 1
                if m.get("role") == "assistant":
                    rep.problems.append(f"{where} line {i}: images are not allowed in assistant messages")
                url = p["image_url"]["url"]
                head, _, b64 = url.partition(",")
                mime = head[5:].split(";")[0] if head.startswith("data:") else ""
                raw = base64.b64decode(b64)
                if mime not in IMAGE_FORMATS:
                    rep.problems.append(f"{where} line {i}: image type {mime or head[:30]} is not JPEG, PNG or WEBP")
                if len(raw) > MAX_IMAGE_BYTES:
                    rep.problems.append(f"{where} line {i}: image of {len(raw)} bytes is over the 10 MB limit")
                with Image.open(io.BytesIO(raw)) as im:
                    if im.mode not in IMAGE_MODES:
                        rep.problems.append(f"{where} line {i}: image mode {im.mode} is not RGB or RGBA")
                    toks += image_tokens(im.width, im.height, p["image_url"].get("detail", "auto"))
        if n_img > MAX_IMAGES_PER_EXAMPLE:
            rep.problems.append(f"{where} line {i}: {n_img} images, more than the {MAX_IMAGES_PER_EXAMPLE} allowed")
        if toks > limit:
            rep.problems.append(f"{where} line {i}: about {toks} tokens, more than {base}'s {limit} per example")
        image_examples += n_img > 0
        rep.images += n_img
        rep.tokens += toks
        rep.max_example_tokens = max(rep.max_example_tokens, toks)
    if training and rep.examples < MIN_EXAMPLES:
        rep.problems.append(f"{where}: {rep.examples} examples, fewer than the {MIN_EXAMPLES} OpenAI requires; "
                            f"use a larger n (n × classes ≥ {MIN_EXAMPLES})")
    if image_examples > MAX_IMAGE_EXAMPLES:
        rep.problems.append(f"{where}: {image_examples} examples with images, more than the {MAX_IMAGE_EXAMPLES} allowed")
    return rep


def check_size(rep: FileReport, size: int, where: str) -> None:
    rep.bytes = size
    if size > MAX_FILE_BYTES:
        rep.problems.append(f"{where}: {size / 1e6:.1f} MB, over the Files API's 512 MB limit per file; use a "
                            f"smaller n or params.image_detail: low with smaller images")


def epochs_for_estimate(epochs) -> int:
    return AUTO_EPOCHS_ESTIMATE if epochs in (None, "auto") else int(epochs)


def cost(tokens: int, epochs, base: str, price: float | None) -> float | None:
    """Estimated USD for ``tokens`` per pass × epochs, or None without a known price."""
    p = price if price is not None else PRICE_PER_MILLION.get(base)
    return None if p is None else tokens * epochs_for_estimate(epochs) * p / 1e6
