"""Tiny random twins of the local VLMs the built-in specs name, built from a config with the
same config, model and processor classes as the real checkpoints, saved with ``save_pretrained``
so they load through the same ``AutoProcessor`` + ``AutoModelForImageTextToText`` path as a hub
checkpoint. Tokenizers are byte-level BPE models trained offline on the words the tests use, with
the real checkpoint's special tokens in the real order (text vocabulary first or last as the
real tokenizer has them) and the real chat template where the checkpoint ships one.

- :func:`save_tiny_llava`: LLaVA-1.5 shaped (``LlavaForConditionalGeneration`` + ``LlavaProcessor``).
- :func:`save_tiny_mllama`: Llama-3.2-11B-Vision-Instruct shaped (``MllamaForConditionalGeneration``
  + ``MllamaProcessor``, the Instruct chat template, tiles, cross-attention layers).
- :func:`save_tiny_idefics`: IDEFICS-9b/80b(-instruct) shaped (``IdeficsForVisionText2Text`` +
  ``IdeficsProcessor``, no chat template as the real ones, the perceiver resampler, decoupled
  embeddings for the added tokens).

Random models are built with their cross-attention gates at 1 instead of the trained-from-zero
initialisation, so the image changes the output (a closed gate would hide a broken image path).
"""
from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent
DEMO_WORDS = ("user: assistant: system: User: Assistant: Question: Answer: What's on this image? "
              "What can you see on this image? The cell_type in this image is Basophil Eosinophil Lymphocyte "
              "Cutting Knowledge Date: December 2023 Today Date: 26 Jul 2024")

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}"
                 "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
                 "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")


def mllama_chat_template() -> str:
    """Llama-3.2-11B-Vision-Instruct's chat template (its ``chat_template.json``), kept in a fixture file."""
    return (HERE / "fixtures" / "llama32_vision_instruct_chat_template.jinja").read_text()


def bpe_tokenizer(corpus: str, vocab_size: int, front: list[str], back: list[str], bos: str | None):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``corpus``: the ``front`` special tokens take
    the first ids, the learned vocabulary follows, the ``back`` special tokens come after it (as
    Llama 3's 128000+ block or IDEFICS's added tokens do). ``bos`` is prepended to every encoding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=front, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator([corpus], trainer=trainer)
    tk.add_special_tokens(back)
    if bos is not None:
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                          special_tokens=[(bos, tk.token_to_id(bos))])
    return tk


def _corpus(extra_text: str) -> str:
    words = sorted(set(re.findall(r"\S+", extra_text + " " + DEMO_WORDS)))
    return " ".join(words) + "\n" + extra_text


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


# Llama 3's reserved block starts right after the text vocabulary, in this order (128000, 128001, ...)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                   "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]


def save_tiny_mllama(folder: Path, extra_text: str = "", seed: int = 0, max_image_tiles: int = 2) -> Path:
    """Llama-3.2-11B-Vision-Instruct in miniature: text vocabulary, then Llama 3's special block, then
    ``<|image|>`` (the real 128256); pad ``<|finetune_right_pad_id|>``; generation stops at
    end_of_text / eom / eot as the real ``generation_config.json``; image tiles of 28 px."""
    import torch
    from transformers import (GenerationConfig, MllamaConfig, MllamaForConditionalGeneration,
                              MllamaImageProcessor, MllamaProcessor, PreTrainedTokenizerFast)

    tk = bpe_tokenizer(_corpus(extra_text), 400, [], LLAMA3_SPECIALS + ["<|image|>"], "<|begin_of_text|>")
    n_text = tk.get_vocab_size() - len(LLAMA3_SPECIALS) - 1
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                  pad_token="<|finetune_right_pad_id|>")
    ids = {t: tk.token_to_id(t) for t in LLAMA3_SPECIALS + ["<|image|>"]}
    assert ids["<|begin_of_text|>"] == n_text and ids["<|image|>"] == n_text + len(LLAMA3_SPECIALS)
    ratios = [[1, 1], [1, 2], [2, 1]] if max_image_tiles >= 2 else [[1, 1]]
    improc = MllamaImageProcessor(size={"height": 28, "width": 28}, max_image_tiles=max_image_tiles)
    proc = MllamaProcessor(image_processor=improc, tokenizer=tok, chat_template=mllama_chat_template())
    cfg = MllamaConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
                           intermediate_size=64, vision_output_dim=64, image_size=28, patch_size=14,
                           max_num_tiles=max_image_tiles, intermediate_layers_indices=[0],
                           supported_aspect_ratios=ratios),
        text_config=dict(vocab_size=tk.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=2, num_key_value_heads=1, cross_attention_layers=[1],
                         max_position_embeddings=4096, bos_token_id=ids["<|begin_of_text|>"],
                         eos_token_id=ids["<|end_of_text|>"], pad_token_id=ids["<|finetune_right_pad_id|>"]),
        image_token_index=ids["<|image|>"])
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(cfg)
    with torch.no_grad():  # open the gates a trained model has opened (random init keeps them at 0)
        for name, p in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                p.fill_(1.0)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|begin_of_text|>"], pad_token_id=ids["<|finetune_right_pad_id|>"],
        eos_token_id=[ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]], do_sample=True,
        temperature=0.6, top_p=0.9)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


IDEFICS_ADDED = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]


def save_tiny_idefics(folder: Path, extra_text: str = "", seed: int = 0, instruct: bool = True) -> Path:
    """IDEFICS in miniature: ``<unk>`` ``<s>`` ``</s>`` at ids 0-2, the text vocabulary, then the added
    ``<fake_token_around_image>`` ``<image>`` (and ``<end_of_utterance>`` for the instruct tokenizer) as
    the real ``added_tokens.json`` (32000, 32001, 32002), embedded by IDEFICS's decoupled additional
    embedding; pad ``<unk>``; no chat template (the real checkpoints ship none)."""
    import torch
    from transformers import (GenerationConfig, IdeficsConfig, IdeficsForVisionText2Text, IdeficsImageProcessor,
                              IdeficsProcessor, PreTrainedTokenizerFast)

    added = IDEFICS_ADDED if instruct else IDEFICS_ADDED[:2]
    tk = bpe_tokenizer(_corpus(extra_text), 400, ["<unk>", "<s>", "</s>"], added, "<s>")
    n_text = tk.get_vocab_size() - len(added)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<unk>", additional_special_tokens=added)
    assert tok.convert_tokens_to_ids("<fake_token_around_image>") == n_text
    improc = IdeficsImageProcessor(image_size=30, image_mean=[0.48145466, 0.4578275, 0.40821073],
                                   image_std=[0.26862954, 0.26130258, 0.27577711])
    proc = IdeficsProcessor(image_processor=improc, tokenizer=tok, image_size=30)
    cfg = IdeficsConfig(
        vocab_size=n_text, additional_vocab_size=len(added), hidden_size=32, intermediate_size=64,
        num_hidden_layers=4, num_attention_heads=2, cross_layer_interval=2, qk_layer_norms=True,
        use_resampler=True, alpha_initializer="ones", pad_token_id=0, bos_token_id=1, eos_token_id=2,
        freeze_text_layers=False, freeze_vision_layers=False, max_position_embeddings=4096,
        vision_config=dict(embed_dim=32, image_size=30, patch_size=15, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64),
        perceiver_config=dict(use_resampler=True, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                              resampler_head_dim=8, qk_layer_norms_perceiver=True))
    torch.manual_seed(seed)
    model = IdeficsForVisionText2Text(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[-1] in ("alpha_cross_attn", "alpha_dense"):
                p.fill_(1.0)
            elif name.endswith("perceiver_resampler.latents"):
                p.mul_(0.02)  # N(0, 1) latents would drown the image features in the resampler's residual
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
