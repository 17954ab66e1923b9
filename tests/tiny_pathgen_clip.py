"""PathGen-CLIP checkpoints as the PathGen-1.6M repository's scripts read them: an open_clip model
(random weights) saved with ``torch.save`` either as a plain state dict or as an open_clip training
checkpoint (``epoch_N.pt``: ``{"epoch", "name", "state_dict": {"module.…"}, "optimizer"}``, what
``open_clip_train`` writes under DDP and what the repository's zero-shot scripts load). Tiny open_clip
configs (``PGTwin-224`` / ``PGTwin-336``, QuickGELU like the real ones) are registered for the
fast layout tests; the real ``ViT-B-16-quickgelu`` is used end to end."""
from __future__ import annotations

import json
from pathlib import Path

TINY = {"embed_dim": 16, "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def register_tiny_configs(folder: Path) -> tuple[str, str]:
    """open_clip configs PGTwin-224 and PGTwin-336 (same widths, two resolutions)."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    for size in (224, 336):
        cfg = json.loads(json.dumps(TINY))
        cfg["vision_cfg"]["image_size"] = size
        (folder / f"PGTwin-{size}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return "PGTwin-224", "PGTwin-336"


def save_pathgen_checkpoint(path: Path, arch: str, layout: str = "training", seed: int = 0):
    """Random ``arch`` weights saved at ``path``; returns the model (eval mode)."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None).eval()
    state = model.state_dict()
    if layout == "training":
        optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        obj = {"epoch": 10, "name": "pathgen-clip", "state_dict": {"module." + k: v for k, v in state.items()},
               "optimizer": optim.state_dict()}
    elif layout == "plain":
        obj = state
    else:
        raise ValueError(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return model
