"""INTERFACE DOUBLE of ``musk.modeling`` (see the package docstring): registers a TINY model under
the published timm name ``musk_large_patch16_384`` with MUSK's ``forward`` signature and return
value ``(vision_cls, language_cls)``, parameter names ``logit_scale``, ``vision_head``,
``language_head`` and a ``beit3`` trunk. The trunk is a toy (a patch projection and a padding-aware
token mean), not BEiT-3."""
import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import register_model

from musk import CALLS


class _Trunk(nn.Module):
    """Stands in for ``beit3``: image patches and text tokens → a [CLS]-like vector per input."""

    def __init__(self, dim: int, vocab_size: int, patch: int):
        super().__init__()
        self.patch = patch
        self.text_embed = nn.Embedding(vocab_size, dim)
        self.vision_proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)
        self.mix = nn.Linear(dim, dim)

    def image(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.vision_proj(x).flatten(2).transpose(1, 2)  # (b, patches, dim)
        return self.mix(torch.tanh(self.norm(tokens.mean(1))))

    def text(self, ids: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        keep = torch.ones_like(ids, dtype=torch.float32) if padding_mask is None else (padding_mask == 0).float()
        e = self.text_embed(ids) * keep.unsqueeze(-1).to(self.text_embed.weight.dtype)
        mean = e.sum(1) / keep.sum(1, keepdim=True).clamp(min=1).to(e.dtype)
        return self.mix(torch.tanh(self.norm(mean)))


class MUSK(nn.Module):
    def __init__(self, dim: int = 16, vocab_size: int = 64010, patch: int = 64):
        super().__init__()
        self.beit3 = _Trunk(dim, vocab_size, patch)
        self.language_head = nn.Linear(dim, dim, bias=False)
        self.vision_head = nn.Linear(dim, dim, bias=False)
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

    def forward(self, image: Optional[torch.Tensor] = None, text_description: Optional[torch.Tensor] = None,
                padding_mask: Optional[torch.Tensor] = None, return_global: bool = True, with_head: bool = True,
                out_norm: bool = True, ms_aug: bool = False, scales: Optional[List[int]] = None,
                max_split_size: Optional[int] = None):
        CALLS.append(("forward", {"image": None if image is None else tuple(image.shape),
                                  "image_dtype": None if image is None else str(image.dtype),
                                  "text_description": None if text_description is None else tuple(text_description.shape),
                                  "padding_mask": None if padding_mask is None else padding_mask.tolist(),
                                  "return_global": return_global, "with_head": with_head, "out_norm": out_norm,
                                  "ms_aug": ms_aug}))
        if ms_aug or not return_global:
            raise NotImplementedError("the double implements the zero-shot path only (ms_aug=False, return_global=True)")
        vision = language = None
        if image is not None:
            vision = self.beit3.image(image)
            if with_head:
                vision = self.vision_head(vision)
            if out_norm:
                vision = F.normalize(vision, dim=-1)
        if text_description is not None:
            language = self.beit3.text(text_description, padding_mask)
            if with_head:
                language = self.language_head(language)
            if out_norm:
                language = F.normalize(language, dim=-1)
        return vision, language


@register_model
def musk_large_patch16_384(pretrained=False, **kwargs):
    return MUSK()  # timm adds pretrained_cfg, cache_dir, ...: the package's config swallows them too
