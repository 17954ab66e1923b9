"""Tiny random twins of the transformers-format encoders (Phikon-v2 and Midnight: ``Dinov2Model`` +
``BitImageProcessor``; DINOv3: ``DINOv3ViTModel`` + ``DINOv3ViTImageProcessor``), saved with
``save_pretrained`` so they load through ``AutoModel`` / ``AutoImageProcessor`` as the hub
checkpoints do. Only depth and width shrink; the processor carries the card's numbers."""
from __future__ import annotations

from pathlib import Path

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def _dinov2(patch: int, registers: bool = False):
    from transformers import Dinov2Config

    return Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        patch_size=patch, image_size=224, layerscale_value=0.5)


def save_hf_twin(folder: Path, name: str, seed: int = 0):
    import torch
    from transformers import (AutoModel, BitImageProcessor, DINOv3ViTConfig, DINOv3ViTImageProcessor)

    torch.manual_seed(seed)
    if name == "dinov3-b":
        cfg = DINOv3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                              patch_size=16, num_register_tokens=4, layerscale_value=0.5)
        proc = DINOv3ViTImageProcessor(size={"height": 224, "width": 224}, do_center_crop=False,
                                       image_mean=IMAGENET[0], image_std=IMAGENET[1])
    else:
        mean, std = ([0.5] * 3, [0.5] * 3) if name == "midnight" else IMAGENET
        cfg = _dinov2(14 if name == "midnight" else 16)
        proc = BitImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                 do_center_crop=True, image_mean=mean, image_std=std, resample=3,
                                 do_convert_rgb=True)
    model = AutoModel.from_config(cfg).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc
