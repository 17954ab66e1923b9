"""A tiny LLaVA built from a config, with a word-level tokenizer that knows the demo task's words,
saved with ``save_pretrained`` so it loads through the same path as a hub checkpoint."""
from __future__ import annotations

import re
from pathlib import Path

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}"
                 "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
                 "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")


def save_tiny_llava(folder: Path, extra_text: str = "", seed: int = 0, hidden: int = 32, layers: int = 2,
                    image_size: int = 32) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

    words = sorted(set(re.findall(r"\S+", extra_text + " user: assistant: system: Basophil Eosinophil Lymphocyte")))
    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "<s>", "</s>", "<image>"] + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                                             crop_size={"height": image_size, "width": image_size}),
                          tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                       num_attention_heads=max(2, hidden // 64), image_size=image_size, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                                num_hidden_layers=layers, num_attention_heads=max(2, hidden // 64),
                                num_key_value_heads=max(2, hidden // 64), max_position_embeddings=4096,
                                pad_token_id=1, bos_token_id=2, eos_token_id=3),
        image_token_index=vocab["<image>"], vision_feature_layer=-1, vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
