"""The chat templates the zoo's tiny VLM twins carry (``tests/fixtures/*_chat_template.jinja``) are
the published checkpoints' own, byte for byte where a source pins the bytes, and render the prompt
each model card shows. Sources and the checks behind each number: docs/model-cards.md."""
import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

FIX = Path(__file__).parent / "fixtures"
#: one user turn with an image then text, as the hf adapter builds a zero-shot request
USER = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which cell?"}]}]
SYSTEM = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}] + USER


def template(name: str) -> str:
    return (FIX / f"{name}_chat_template.jinja").read_text(encoding="utf-8")


def render(name: str, conversation) -> str:
    """Rendered as transformers renders a processor's chat template (apply_chat_template)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    (out,), _ = render_jinja_template(conversations=[conversation], chat_template=template(name),
                                      add_generation_prompt=True)
    return out


def hub_json_size(name: str) -> int:
    """Size of the chat_template.json that save_pretrained writes for this template (indent 2 + newline)."""
    return len((json.dumps({"chat_template": template(name)}, indent=2) + "\n").encode())


def test_qwen3_vl_is_the_published_template_byte_for_byte():
    # Qwen/Qwen3-VL-8B-Instruct's template as shipped in its GGUF: 5292 bytes, SHA-256 pinned by
    # zhongkaifu/TensorSharp's QwenImageIntentScorerTests (the tools branch included)
    raw = template("qwen3_vl").encode("utf-8")
    assert len(raw) == 5292
    assert hashlib.sha256(raw).hexdigest() == "3636d0f0bd6bef02654cdffdc447b79cb2cef8ab02cc75267345946291a489e4"


def test_template_sizes_match_the_hub_files():
    # OpenGVLab/InternVL3-8B-hf chat_template.jinja: 481 bytes; HuggingFaceTB/SmolVLM2-2.2B-Instruct
    # chat_template.json: 430 bytes ("Fix chat template (#1)")
    assert len(template("internvl3_hf").encode()) == 481
    assert hub_json_size("smolvlm2") == 430


def test_qwen3_vl_prompt_has_no_default_system_turn():
    assert render("qwen3_vl", USER) == ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Which cell?"
                                        "<|im_end|>\n<|im_start|>assistant\n")
    assert render("qwen3_vl", SYSTEM).startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")


def test_qwen2_5_vl_prompt_adds_the_default_system_turn():
    assert render("qwen2_5_vl", USER) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>Which cell?<|im_end|>\n<|im_start|>assistant\n")
    assert "helpful assistant" not in render("qwen2_5_vl", SYSTEM)


def test_internvl3_hf_prompt_puts_one_image_context_line_per_image():
    assert render("internvl3_hf", USER) == ("<|im_start|>user\n<IMG_CONTEXT>\nWhich cell?<|im_end|>\n"
                                            "<|im_start|>assistant\n")


def test_smolvlm2_prompt_is_user_image_then_assistant():
    assert render("smolvlm2", USER) == "<|im_start|>User:<image>Which cell?<end_of_utterance>\nAssistant:"
    text_first = [{"role": "user", "content": [{"type": "text", "text": "Which cell?"}, {"type": "image"}]}]
    assert render("smolvlm2", text_first) == "<|im_start|>User: Which cell?<image><end_of_utterance>\nAssistant:"
    assert "video" not in template("smolvlm2")  # the hub template has no video branch


def test_gemma3_prompt_folds_the_system_text_into_the_first_user_turn():
    from transformers.utils.chat_template_utils import render_jinja_template

    (out,), _ = render_jinja_template(conversations=[SYSTEM], chat_template=template("gemma3"),
                                      add_generation_prompt=True, bos_token="<bos>")
    assert out == ("<bos><start_of_turn>user\nBe brief.\n\n<start_of_image>Which cell?<end_of_turn>\n"
                   "<start_of_turn>model\n")
