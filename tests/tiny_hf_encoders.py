"""Tiny random twins of the transformers-format encoders (Phikon-v2 and Midnight: ``Dinov2Model`` +
``BitImageProcessor``; DINOv3-B/L: ``DINOv3ViTModel`` + ``DINOv3ViTImageProcessor``; Hibou-B/L:
remote code behind ``config.json`` ``auto_map``), saved so they load through ``AutoModel`` /
``AutoImageProcessor`` as the hub checkpoints do. Only depth and width shrink; the processor
carries the card's numbers."""
from __future__ import annotations

from pathlib import Path

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
#: HistAI's mean / std (HistAI/hibou example.ipynb, the card's torchvision pipeline)
HIBOU = ([0.7068, 0.5755, 0.722], [0.195, 0.2316, 0.1816])
#: config.json ``auto_map`` of the twin: file and class names as third-party copies of HistAI's
#: repo files import them (``modeling_dinov2.Dinov2ModelWithRegisters``,
#: ``configuration_dinov2.Dinov2Config``); HistAI's own config.json cannot be read here
HIBOU_AUTO_MAP = {"AutoConfig": "configuration_dinov2.Dinov2Config",
                  "AutoModel": "modeling_dinov2.Dinov2ModelWithRegisters"}

HIBOU_CONFIGURATION = '''"""cytoreg test twin of HistAI's configuration_dinov2.py (histai/hibou-b, histai/hibou-L).

Written by cytoreg's tests: HistAI's own file cannot be fetched here. Like HistAI's it is a DINOv2
config with register tokens under model_type "dinov2"; this one subclasses transformers' own
Dinov2WithRegistersConfig for its fields."""
from transformers import Dinov2WithRegistersConfig


class Dinov2Config(Dinov2WithRegistersConfig):
    model_type = "dinov2"
'''

HIBOU_MODELING = '''"""cytoreg test twin of HistAI's modeling_dinov2.py (histai/hibou-b, histai/hibou-L).

Written by cytoreg's tests: HistAI's own file cannot be fetched here. A DINOv2 ViT with register
tokens (after CLS, outside the position embedding), SwiGLU FFN and LayerScale, with module names
of the transformers 4.x DINOv2 code HistAI's file was built from, so the checkpoint keys
(embeddings.register_tokens, attention.attention.query, mlp.weights_in, layer_scale1.lambda1, ...)
load as they are. pooler_output is the CLS token after the final LayerNorm."""
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration_dinov2 import Dinov2Config


class _Patches(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.projection = nn.Conv2d(c.num_channels, c.hidden_size, c.patch_size, c.patch_size)

    def forward(self, x):
        return self.projection(x).flatten(2).transpose(1, 2)


class _Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        n = (c.image_size // c.patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(1, c.hidden_size))
        self.register_tokens = nn.Parameter(torch.zeros(1, c.num_register_tokens, c.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, n + 1, c.hidden_size))
        self.patch_embeddings = _Patches(c)

    def forward(self, x):
        p = self.patch_embeddings(x)
        if p.shape[1] + 1 != self.position_embeddings.shape[1]:
            raise ValueError("this twin runs at its trained resolution only")
        e = torch.cat([self.cls_token.expand(len(x), -1, -1), p], 1) + self.position_embeddings
        return torch.cat([e[:, :1], self.register_tokens.expand(len(x), -1, -1), e[:, 1:]], 1)


class _QKV(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(c.hidden_size, c.hidden_size, bias=c.qkv_bias) for _ in "qkv")


class _Out(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)


class _Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_attention_heads
        self.attention, self.output = _QKV(c), _Out(c)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = (f(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for f in (self.attention.query, self.attention.key, self.attention.value))
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.output.dense(y.transpose(1, 2).reshape(b, n, d))


class _Scale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.lambda1 = nn.Parameter(c.layerscale_value * torch.ones(c.hidden_size))

    def forward(self, x):
        return x * self.lambda1


class _SwiGLU(nn.Module):
    def __init__(self, c):
        super().__init__()
        hidden = (int(int(c.hidden_size * c.mlp_ratio) * 2 / 3) + 7) // 8 * 8
        self.weights_in = nn.Linear(c.hidden_size, 2 * hidden)
        self.weights_out = nn.Linear(hidden, c.hidden_size)

    def forward(self, x):
        a, g = self.weights_in(x).chunk(2, dim=-1)
        return self.weights_out(nn.functional.silu(a) * g)


class _Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.attention, self.layer_scale1 = _Attention(c), _Scale(c)
        self.norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp, self.layer_scale2 = _SwiGLU(c), _Scale(c)

    def forward(self, x):
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class _Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class Dinov2ModelWithRegisters(PreTrainedModel):
    config_class = Dinov2Config
    base_model_prefix = "dinov2"
    main_input_name = "pixel_values"

    def __init__(self, config):
        super().__init__(config)
        self.embeddings, self.encoder = _Embeddings(config), _Encoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def forward(self, pixel_values, **kwargs):
        x = self.embeddings(pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype))
        for layer in self.encoder.layer:
            x = layer(x)
        x = self.layernorm(x)
        return BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=x[:, 0])
'''


def _dinov2(patch: int, registers: bool = False):
    from transformers import Dinov2Config

    return Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        patch_size=patch, image_size=224, layerscale_value=0.5)


def save_hibou_twin(folder: Path, seed: int = 0):
    """Hibou's checkpoint layout: config.json (model_type ``dinov2``, ``auto_map`` to the two
    files) + configuration_dinov2.py + modeling_dinov2.py + model.safetensors +
    preprocessor_config.json (``BitImageProcessor``, HistAI's mean/std, 224 px, bicubic). The
    weights come from transformers' own ``Dinov2WithRegistersModel`` (patch 14, 4 registers,
    SwiGLU, LayerScale), saved under the legacy key names Hibou's file reads; that built-in
    model is returned as the independent reference."""
    import json

    import torch
    from transformers import BitImageProcessor, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(seed)
    cfg = Dinov2WithRegistersConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4,
                                    patch_size=14, image_size=224, num_register_tokens=4, use_swiglu_ffn=True,
                                    layerscale_value=0.5)
    model = Dinov2WithRegistersModel(cfg).eval()
    with torch.no_grad():  # random registers / LayerScale, so a model that drops them reads differently
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="dinov2", architectures=["Dinov2ModelWithRegisters"], auto_map=HIBOU_AUTO_MAP)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "configuration_dinov2.py").write_text(HIBOU_CONFIGURATION)
    (folder / "modeling_dinov2.py").write_text(HIBOU_MODELING)
    proc = BitImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                             do_center_crop=True, image_mean=HIBOU[0], image_std=HIBOU[1], resample=3,
                             do_convert_rgb=True)
    proc.save_pretrained(folder)
    return model, proc


def save_hf_twin(folder: Path, name: str, seed: int = 0):
    import torch
    from transformers import (AutoModel, BitImageProcessor, DINOv3ViTConfig, DINOv3ViTImageProcessor)

    torch.manual_seed(seed)
    if name in ("dinov3-b", "dinov3-l"):
        # the flags of transformers' convert_dinov3_vit_to_hf.py for vitb / vitl (RoPE, masked k bias,
        # 4 registers, no SwiGLU) and its processor (224 x 224, bilinear, ImageNet mean/std)
        cfg = DINOv3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                              patch_size=16, num_register_tokens=4, layerscale_value=0.5, mask_k_bias=True,
                              qkv_bias=True, use_swiglu_ffn=False, layer_norm_eps=1e-5, pos_embed_rope_base=100,
                              pos_embed_rope_normalize_coords="separate", pos_embed_rope_rescale_coords=2,
                              pos_embed_rope_dtype="fp32")
        proc = DINOv3ViTImageProcessor(size={"height": 224, "width": 224}, do_center_crop=False, resample=2,
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
