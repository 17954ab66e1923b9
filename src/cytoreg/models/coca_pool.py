"""The two pieces of CONCH v1.5's image encoder that timm does not have: the CoCa-style
attentional pooler its ViT-L trunk ends with (``attn_pool_contrast`` + ``ln_contrast``: one learned
query attends over all the trunk's normed tokens, 8 heads, bias-free projections, LayerNorm on query,
keys and output), and the DINO / iBOT way its trunk resizes the 14 × 14 position embedding to the
input's grid (bicubic with the scale factor (n + 0.1) / 14, not timm's size-based resample). Both
follow mahmoodlab/TRIDENT ``trident/patch_encoder_models/model_zoo/conchv1_5/conchv1_5.py`` and the
``conch_v1_5.py`` of MahmoodLab/TITAN's remote code; torch is imported inside the functions."""
from __future__ import annotations

import math
from typing import Any


def dino_pos_embed(pos_embed: Any, grid: tuple[int, int], base_grid: int | None = None) -> Any:
    """A ``[1, 1 + N, C]`` position embedding (class token first) as the published trunk adds it to
    a ``grid`` of patches: first resized to ``base_grid`` (the grid the trunk is built with) by
    timm's bilinear resample without antialias when the checkpoint's differs, then by DINO's
    bicubic interpolation with scale factor ``(g + 0.1) / sqrt(N)``."""
    import torch
    import torch.nn.functional as F

    n = pos_embed.shape[1] - 1
    side = int(math.isqrt(n))
    if side * side != n:
        raise ValueError(f"position embedding with {n} patch tokens is not a square grid")
    if base_grid and side != base_grid:
        from timm.layers import resample_abs_pos_embed

        pos_embed = resample_abs_pos_embed(pos_embed, new_size=(base_grid, base_grid), num_prefix_tokens=1,
                                           interpolation="bilinear", antialias=False, verbose=False)
        side = base_grid
    if (side, side) == tuple(grid):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    grid_in = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    out = F.interpolate(grid_in, scale_factor=((grid[0] + 0.1) / side, (grid[1] + 0.1) / side), mode="bicubic")
    if tuple(out.shape[-2:]) != tuple(grid):
        raise ValueError(f"DINO interpolation gave a {tuple(out.shape[-2:])} grid, not {tuple(grid)}")
    return torch.cat([cls_pos, out.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)


def attentional_pooler(state: dict, heads: int) -> Any:
    """An ``nn.Module`` (tokens ``[B, L, C]`` → ``[B, D]``) holding ``state``: ``query``,
    ``ln_q``, ``ln_k``, ``to_q``, ``to_kv``, ``to_out`` of the pooler and ``norm`` (``ln_contrast``),
    with the widths read from the tensors; the first query's output is the embedding."""
    import torch
    from torch import nn

    n_queries, d_model = state["query"].shape
    inner, context = state["to_kv.weight"].shape[0] // 2, state["to_kv.weight"].shape[1]
    if inner % heads:
        raise ValueError(f"{inner} pooler channels do not split into {heads} heads")

    class AttentionalPooler(nn.Module):
        def __init__(self):
            super().__init__()
            self.query = nn.Parameter(torch.empty(n_queries, d_model))
            self.ln_q, self.ln_k = nn.LayerNorm(d_model), nn.LayerNorm(context)
            self.to_q = nn.Linear(d_model, inner, bias=False)
            self.to_kv = nn.Linear(context, 2 * inner, bias=False)
            self.to_out = nn.Linear(inner, d_model, bias=False)
            self.norm = nn.LayerNorm(d_model)

        def forward(self, x):
            b, length, _ = x.shape
            q = self.to_q(self.ln_q(self.query)).expand(b, -1, -1)
            k, v = self.to_kv(self.ln_k(x)).chunk(2, dim=-1)

            def split(t):
                return t.reshape(b, t.shape[1], heads, inner // heads).transpose(1, 2)

            out = nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
            out = self.to_out(out.transpose(1, 2).reshape(b, n_queries, inner))
            return self.norm(out[:, 0])

    pool = AttentionalPooler()
    pool.load_state_dict(state, strict=True)
    return pool.eval()
