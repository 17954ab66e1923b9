"""Build a tiny open_clip model and save it in the layout real checkpoints use (local-dir:)."""
import json
from pathlib import Path

TINY_CFG = {"embed_dim": 16,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1}}


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**TINY_CFG)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": TINY_CFG, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def save_open_clip_arch(arch: str, folder: Path, seed: int = 0) -> Path:
    """Random weights of a real open_clip architecture (e.g. ViT-B-32), saved like a hub repo."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": open_clip.get_model_config(arch),
           "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


TINY_CONCH_CFG = {
    "embed_dim": 16, "embed_dim_caption": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 16, "layers": 1, "width": 32, "num_heads": 2,
                   "attentional_pool_contrast": True, "attentional_pool_caption": True,
                   "n_queries_contrast": 1, "n_queries_caption": 4, "attn_pooler_heads": 2, "output_tokens": True},
    "text_cfg": {"context_length": 128, "vocab_size": 32007, "width": 32, "heads": 2, "layers": 1,
                 "embed_cls": True, "output_tokens": True},
    "multimodal_cfg": {"context_length": 128, "vocab_size": 32007, "width": 32, "heads": 2, "layers": 0},
}


def save_tiny_conch(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A CoCa model shaped like CONCH (vocab/context kept so the real tokenizer fits); returns
    (config json, checkpoint in the published pytorch_model.bin format)."""
    import torch
    from conch.open_clip_custom.coca_model import CoCa

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cfg_path = folder / "tiny_conch.json"
    cfg_path.write_text(json.dumps(TINY_CONCH_CFG))
    model = CoCa(**json.loads(cfg_path.read_text()))
    ckpt = folder / "pytorch_model.bin"
    torch.save(model.state_dict(), ckpt)
    return cfg_path, ckpt


def save_tiny_hf_clip(folder: Path, seed: int = 0) -> Path:
    """A transformers CLIPModel from a tiny config, with a real CLIP BPE tokenizer built from the
    merges file open_clip ships, saved with ``save_pretrained`` like a hub repo (PLIP's format)."""
    import gzip

    import open_clip
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from open_clip.tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                             crop_size={"height": 32, "width": 32}), tokenizer=tok)
    torch.manual_seed(seed)
    cfg = CLIPConfig(text_config={"vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32,
                                  "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 77},
                     vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                    "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                     projection_dim=8)
    CLIPModel(cfg).save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
