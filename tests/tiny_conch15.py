"""A tiny twin of CONCH v1.5's published vision checkpoint (``pytorch_model_vision.bin`` of
MahmoodLab/conchv1_5): one torch state dict with the ViT trunk under ``trunk.`` (timm's ViT key
layout, LayerScale ``gamma``, built at 224 px so its position embedding is 14 × 14 like the
published one), the attentional pooler under ``attn_pool_contrast.`` (``query``, ``ln_q``, ``ln_k``,
``to_q``, ``to_kv``, ``to_out``, bias-free projections) and ``ln_contrast.``. The trunk keeps the
published ``vit_large_patch16_224`` class and kwargs (``init_values``), only depth / width shrink;
the pooler keeps 8 heads and one query, width 16 instead of 768."""
from __future__ import annotations

import json
from pathlib import Path

TRUNK = {"depth": 2, "embed_dim": 32, "num_heads": 2}
POOL_DIM, POOL_HEADS = 16, 8
REPO, FILE = "MahmoodLab/conchv1_5", "pytorch_model_vision.bin"


def save_tiny_conch15(folder: Path, seed: int = 0):
    """Write ``folder/pytorch_model_vision.bin``; returns (trunk, pooler tensors) for an independent
    computation."""
    import timm
    import torch

    torch.manual_seed(seed)
    trunk = timm.create_model("vit_large_patch16_224", pretrained=False, img_size=224, init_values=1.0,
                              num_classes=0, **TRUNK).eval()
    with torch.no_grad():
        for n, p in trunk.named_parameters():
            if n.endswith("gamma"):
                p.copy_(0.5 + 0.1 * torch.randn_like(p))
        trunk.pos_embed.normal_(std=0.5)  # a position embedding whose interpolation shows
    c, d = TRUNK["embed_dim"], POOL_DIM
    pool = {"query": torch.randn(1, d), "ln_q.weight": 1 + 0.1 * torch.randn(d), "ln_q.bias": 0.1 * torch.randn(d),
            "ln_k.weight": 1 + 0.1 * torch.randn(c), "ln_k.bias": 0.1 * torch.randn(c),
            "to_q.weight": torch.randn(d, d) / d ** 0.5, "to_kv.weight": torch.randn(2 * d, c) / c ** 0.5,
            "to_out.weight": torch.randn(d, d) / d ** 0.5}
    ln = {"weight": 1 + 0.1 * torch.randn(d), "bias": 0.1 * torch.randn(d)}
    sd = {f"trunk.{k}": v for k, v in trunk.state_dict().items()}
    sd.update({f"attn_pool_contrast.{k}": v for k, v in pool.items()})
    sd.update({f"ln_contrast.{k}": v for k, v in ln.items()})
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(sd, folder / FILE)
    return trunk, {**pool, **{f"ln_contrast.{k}": v for k, v in ln.items()}}


def put_in_hf_cache(cache: Path, folder: Path) -> Path:
    """The hub cache layout huggingface_hub writes (models--org--name/{refs/main, snapshots/<sha>/})."""
    import shutil

    root = cache / f"models--{REPO.replace('/', '--')}"
    snap = root / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / FILE, snap / FILE)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("0" * 40)
    return snap / FILE


def twin_spec(checkpoint: str | None = None) -> str:
    """The built-in spec with only the trunk's size changed (and, given, the checkpoint)."""
    params = {"model_kwargs": {"init_values": 1.0, **TRUNK}}
    if checkpoint:
        params["checkpoint"] = checkpoint
    return (f"spec: model/v1\nname: conch-v1.5-twin\nextends: conch-v1.5\nparams: {json.dumps(params)}\n"
            "execution: {batch_size: 4, workers: 0}\n")
