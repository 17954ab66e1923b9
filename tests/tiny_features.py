"""Tiny DINOv2-architecture encoders saved in DinoBloom's published checkpoint format."""
from pathlib import Path

TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2}
IMG = 28


def tiny_dinov2(seed: int = 0):
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=IMG, num_classes=0, **TINY).eval()
    with torch.no_grad():  # LayerScale 1.0 as DINOv2's hub models: blocks then differ visibly
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    return model


def save_tiny_dinobloom(path: Path, seed: int = 0):
    """A ``{"teacher": {"backbone.…": …, "dino_head.…": …, "ibot_head.…": …}}`` checkpoint, as the
    DinoBloom releases are laid out; returns the timm model holding the same weights."""
    import torch

    model = tiny_dinov2(seed)
    teacher = {f"backbone.{k}": v.clone() for k, v in model.state_dict().items()}
    teacher["backbone.mask_token"] = torch.zeros(1, TINY["embed_dim"])
    teacher["dino_head.mlp.0.weight"] = torch.randn(8, TINY["embed_dim"])
    teacher["ibot_head.mlp.0.weight"] = torch.randn(8, TINY["embed_dim"])
    torch.save({"teacher": teacher, "iteration": 1000}, path)
    return model


def spec_text(name: str, ckpt: Path, layers: str = "") -> str:
    return (f"spec: model/v1\nname: {name}\nadapter: timm\nparams:\n  arch: vit_small_patch14_dinov2\n"
            f"  checkpoint: '{ckpt}'\n  checkpoint_format: dinobloom\n  img_size: {IMG}\n"
            f"  model_kwargs: {{depth: {TINY['depth']}, embed_dim: {TINY['embed_dim']}, num_heads: {TINY['num_heads']}}}\n"
            + (f"  layers: {layers}\n" if layers else "") + "execution: {batch_size: 32, workers: 0}\n")
