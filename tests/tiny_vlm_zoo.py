"""Tiny twins of the 2025 open VLMs in the zoo, in the pattern of ``tiny_vlm`` (same config, model
and processor classes as the hub checkpoints, a byte-level BPE tokenizer with the real special
tokens, the real chat template kept under ``fixtures/``), saved with ``save_pretrained``:

- :func:`save_tiny_qwen25vl`: Qwen2.5-VL-7B-Instruct / Lingshu-7B shaped
  (``Qwen2_5_VLForConditionalGeneration`` + ``Qwen2_5_VLProcessor`` with ``Qwen2VLImageProcessor``;
  ChatML template with ``<|vision_start|><|image_pad|><|vision_end|>``; M-RoPE; no BOS; generation
  stops at ``<|im_end|>`` / ``<|endoftext|>``).
- :func:`save_tiny_gemma3`: MedGemma-4B/27B-it shaped (``Gemma3ForConditionalGeneration`` +
  ``Gemma3Processor`` with ``Gemma3ImageProcessor``; Gemma 3's template with ``<start_of_image>``
  expanded to ``<image_soft_token>`` × mm_tokens_per_image; BOS written by the template; stops at
  ``<end_of_turn>``). The image projection, zero at initialisation, is drawn at random so the image
  reaches the text as in a trained model.
- :func:`save_tiny_qwen3vl`: Qwen3-VL-8B-Instruct shaped.
- :func:`save_tiny_internvl`: InternVL3-8B-hf shaped.
- :func:`save_tiny_smolvlm2`: SmolVLM2-2.2B-Instruct shaped.

The chat templates in ``fixtures/`` are the checkpoints' own (sources and checks in
docs/model-cards.md; ``test_vlm_chat_templates.py`` pins them):

- ``qwen3_vl``: Qwen/Qwen3-VL-8B-Instruct, byte-identical (5292 bytes, SHA-256 3636d0f0…) to the
  template pinned in zhongkaifu/TensorSharp's QwenImageIntentScorerTests, tools branch included.
- ``qwen2_5_vl``: Qwen/Qwen2.5-VL-7B-Instruct chat_template.json (as mirrored in
  optimum-intel-internal-testing/tiny-random-qwen2.5-vl); Lingshu-7B is assumed to ship the same.
- ``internvl3_hf``: the ``chat_template`` of transformers'
  models/internvl/convert_internvl_weights_to_hf.py, which wrote OpenGVLab/InternVL3-8B-hf's
  chat_template.jinja (481 bytes).
- ``smolvlm2``: HuggingFaceTB/SmolVLM2-2.2B-Instruct chat_template.json (430 bytes, no video branch;
  transformers' own DEFAULT_CHAT_TEMPLATE with video is used only for video input).
- ``gemma3``: google/gemma-3 / MedGemma -it template (BOS written by the template, system text folded
  into the first user turn).
"""
from __future__ import annotations

from pathlib import Path

from tiny_vlm import HERE, _corpus, bpe_tokenizer

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]


def save_tiny_qwen25vl(folder: Path, extra_text: str = "", seed: int = 0) -> Path:
    """Text vocabulary first, then Qwen2's special block in the real order (151643 ...); pad
    ``<|endoftext|>``; images of 56 x 56 px → 4 x 4 patches of 14 → 4 tokens after the 2 x 2 merge."""
    import torch
    from transformers import (GenerationConfig, PreTrainedTokenizerFast, Qwen2_5_VLConfig,
                              Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor)

    tk = bpe_tokenizer(_corpus(extra_text + " You are a helpful assistant."), 400, [], QWEN_SPECIALS, None)
    ids = {t: tk.token_to_id(t) for t in QWEN_SPECIALS}
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                                                        "vision_bos_token": "<|vision_start|>",
                                                        "vision_eos_token": "<|vision_end|>"})
    improc = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                   temporal_patch_size=2)
    video = Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                  temporal_patch_size=2)
    proc = Qwen2_5_VLProcessor(image_processor=improc, tokenizer=tok, video_processor=video,
                               chat_template=(HERE / "fixtures/qwen2_5_vl_chat_template.jinja").read_text())
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=tk.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                                               eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


GEMMA_FRONT = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
GEMMA_BACK = ["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]


def save_tiny_gemma3(folder: Path, extra_text: str = "", seed: int = 0) -> Path:
    """``<pad> <eos> <bos> <unk> <mask>`` at ids 0-4 as Gemma's, the text vocabulary, then the turn and
    image tokens; images 32 x 32 px, patches of 8, pooled to mm_tokens_per_image = 4."""
    import torch
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor,
                              GenerationConfig, PreTrainedTokenizerFast)

    tk = bpe_tokenizer(_corpus(extra_text), 400, GEMMA_FRONT, GEMMA_BACK, "<bos>")
    ids = {t: tk.token_to_id(t) for t in GEMMA_FRONT + GEMMA_BACK}
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                  unk_token="<unk>", mask_token="<mask>",
                                  extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                                        "image_token": "<image_soft_token>"})
    improc = Gemma3ImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                  do_pan_and_scan=False)
    proc = Gemma3Processor(image_processor=improc, tokenizer=tok, image_seq_length=4,
                           chat_template=(HERE / "fixtures/gemma3_chat_template.jinja").read_text())
    cfg = Gemma3Config(
        text_config=dict(vocab_size=tk.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=4096,
                         sliding_window=64, pad_token_id=ids["<pad>"], bos_token_id=ids["<bos>"],
                         eos_token_id=ids["<eos>"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        mm_tokens_per_image=4, image_token_index=ids["<image_soft_token>"], boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"])
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg)
    with torch.no_grad():  # Gemma 3 initialises the image projection at zero: a trained one is not
        for name, p in model.named_parameters():
            if name.endswith("mm_input_projection_weight"):
                p.normal_(0.0, 0.2)
    model.generation_config = GenerationConfig(bos_token_id=ids["<bos>"], pad_token_id=ids["<pad>"],
                                               eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def save_tiny_qwen3vl(folder: Path, extra_text: str = "", seed: int = 0) -> Path:
    """Qwen3-VL-8B-Instruct shaped: ``Qwen3VLForConditionalGeneration`` + ``Qwen3VLProcessor``
    (16 px patches merged 2 x 2, DeepStack features from vision layer 0, interleaved M-RoPE), the
    Qwen2 special block, and Qwen3-VL-Instruct's chat template (no default system prompt; the tools
    branch left out)."""
    import torch
    from transformers import (GenerationConfig, PreTrainedTokenizerFast, Qwen2VLImageProcessor, Qwen3VLConfig,
                              Qwen3VLForConditionalGeneration, Qwen3VLProcessor, Qwen3VLVideoProcessor)

    tk = bpe_tokenizer(_corpus(extra_text), 400, [], QWEN_SPECIALS, None)
    ids = {t: tk.token_to_id(t) for t in QWEN_SPECIALS}
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                                                        "vision_bos_token": "<|vision_start|>",
                                                        "vision_eos_token": "<|vision_end|>"})
    px = 64 * 64
    improc = Qwen2VLImageProcessor(min_pixels=px, max_pixels=px, patch_size=16, merge_size=2, temporal_patch_size=2,
                                   image_mean=[0.5] * 3, image_std=[0.5] * 3)
    video = Qwen3VLVideoProcessor(size={"shortest_edge": px, "longest_edge": px}, patch_size=16, merge_size=2,
                                  temporal_patch_size=2)
    proc = Qwen3VLProcessor(image_processor=improc, tokenizer=tok, video_processor=video,
                            chat_template=(HERE / "fixtures/qwen3_vl_chat_template.jinja").read_text())
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=tk.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [4, 2, 2],
                                          "mrope_interleaved": True},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=16,
                           deepstack_visual_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                                               eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


INTERNVL_SPECIALS = QWEN_SPECIALS + ["<img>", "</img>", "<IMG_CONTEXT>", "<video>"]


def save_tiny_internvl(folder: Path, extra_text: str = "", seed: int = 0) -> Path:
    """InternVL3-8B-hf shaped: ``InternVLForConditionalGeneration`` (InternViT + pixel-shuffle
    projector + Qwen2) + ``InternVLProcessor`` with ``GotOcr2ImageProcessor`` (tiles + thumbnail),
    ``<img><IMG_CONTEXT>…</img>`` per tile, the -hf checkpoints' ChatML template."""
    import torch
    from transformers import (GenerationConfig, GotOcr2ImageProcessor, InternVLConfig,
                              InternVLForConditionalGeneration, InternVLProcessor, InternVLVideoProcessor,
                              PreTrainedTokenizerFast)

    tk = bpe_tokenizer(_corpus(extra_text), 400, [], INTERNVL_SPECIALS, None)
    ids = {t: tk.token_to_id(t) for t in INTERNVL_SPECIALS}
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                                                        "context_image_token": "<IMG_CONTEXT>",
                                                        "video_token": "<video>"})
    improc = GotOcr2ImageProcessor(size={"height": 56, "width": 56}, crop_to_patches=True, min_patches=1,
                                   max_patches=2, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    video = InternVLVideoProcessor(size={"height": 56, "width": 56})
    proc = InternVLProcessor(image_processor=improc, tokenizer=tok, video_processor=video, image_seq_length=4,
                             chat_template=(HERE / "fixtures/internvl3_hf_chat_template.jinja").read_text())
    cfg = InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=[56, 56], patch_size=[14, 14], layer_scale_init_value=0.1),
        text_config=dict(model_type="qwen2", vocab_size=tk.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=4096, bos_token_id=ids["<|endoftext|>"],
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        image_token_id=ids["<IMG_CONTEXT>"], downsample_ratio=0.5, vision_feature_layer=-1,
        vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                                               eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


SMOL_FRONT = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SMOL_BACK = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + \
    [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]


def save_tiny_smolvlm2(folder: Path, extra_text: str = "", seed: int = 0) -> Path:
    """SmolVLM2-2.2B-Instruct shaped: ``SmolVLMForConditionalGeneration`` (SigLIP-style encoder,
    pixel-shuffle connector, Llama text model) + ``SmolVLMProcessor`` (``SmolVLMImageProcessor``
    splitting each image into tiles + a global image, ``<row_r_col_c>`` / ``<global-img>`` markers,
    ``<fake_token_around_image>``), the SmolVLM chat template (``User:`` … ``<end_of_utterance>``,
    ``Assistant:``)."""
    import torch
    from transformers import (GenerationConfig, PreTrainedTokenizerFast, SmolVLMConfig,
                              SmolVLMForConditionalGeneration, SmolVLMImageProcessor, SmolVLMProcessor,
                              SmolVLMVideoProcessor)

    tk = bpe_tokenizer(_corpus(extra_text + " User: Assistant:"), 400, SMOL_FRONT, SMOL_BACK, None)
    ids = {t: tk.token_to_id(t) for t in SMOL_FRONT + SMOL_BACK}
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>",
                                  extra_special_tokens={"fake_image_token": "<fake_token_around_image>",
                                                        "image_token": "<image>",
                                                        "end_of_utterance_token": "<end_of_utterance>",
                                                        "global_image_token": "<global-img>"})
    improc = SmolVLMImageProcessor(size={"longest_edge": 56}, max_image_size={"longest_edge": 28},
                                   do_image_splitting=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    video = SmolVLMVideoProcessor(size={"longest_edge": 56}, max_image_size={"longest_edge": 28})
    proc = SmolVLMProcessor(image_processor=improc, tokenizer=tok, video_processor=video, image_seq_len=1,
                            chat_template=(HERE / "fixtures/smolvlm2_chat_template.jinja").read_text())
    cfg = SmolVLMConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=28, patch_size=14),
        text_config=dict(model_type="llama", vocab_size=tk.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=4096, bos_token_id=ids["<|im_start|>"],
                         eos_token_id=ids["<end_of_utterance>"], pad_token_id=ids["<|im_end|>"]),
        scale_factor=2, image_token_id=ids["<image>"], pad_token_id=ids["<|im_end|>"])
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|im_start|>"], pad_token_id=ids["<|im_end|>"],
                                               eos_token_id=[ids["<end_of_utterance>"], ids["<|endoftext|>"]])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
