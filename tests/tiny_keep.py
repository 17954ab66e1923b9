"""A tiny twin of KEEP (``Astaxanthin/KEEP``) in its published checkpoint layout: ``config.json``
(``model_type: keep``, ``auto_map`` to ``modeling_keep.KEEPConfig`` / ``modeling_keep.KEEPModel``,
``projection_dim``, a BERT ``text_config``), a ``modeling_keep.py``, ``model.safetensors`` and a BERT
WordPiece tokenizer (``vocab.txt``, lower-cased) trained here on the demo task's words.

The real ``modeling_keep.py`` cannot be fetched here. :data:`MODELING` is written by us from what is
public about it: the model class as printed in MAGIC-AI4Med/KEEP ``quick_start/keep_inference.py``
(timm ``vit_large_patch16_224`` with ``init_values=1e-5``, ``dynamic_img_size``; ``visual_head``
Linear-GELU-Linear to ``projection_dim``; ``BertModel(text_config)`` whose normalised
``pooler_output`` is the text embedding; ``logit_scale`` initialised at log(1/0.04)), plus two
traits peers report of the hub file: it replaces ``timm.models.vision_transformer.LayerScale`` at
import with a class whose parameter is ``weight`` and whose ``__init__`` takes no device/dtype, and
its ``__init__`` never calls ``post_init()``. Only the ViT's depth/width are read from
``vision_config`` here (the real file hard-codes ViT-L) so that the twin can be tiny.

The weights are made independently of that file: plain timm + transformers modules
(:func:`reference_modules`), saved under KEEP's key names (LayerScale ``gamma`` → ``weight``)."""
from __future__ import annotations

import json
from pathlib import Path

VISION = {"depth": 2, "embed_dim": 48, "num_heads": 2}
TEXT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 256, "type_vocab_size": 2}
PROJECTION = 32  # = the text hidden size: KEEP has no text projection (768 = BERT-base)
LOGIT_SCALE = 1 / 0.04

MODELING = '''"""A stand-in for Astaxanthin/KEEP's modeling_keep.py, written for cytoreg's tests (the real file
cannot be fetched here): the same classes, methods and signatures, the same global LayerScale swap."""
import numpy
import timm
import torch
import torch.nn as nn
from transformers import BertConfig, BertModel, PretrainedConfig, PreTrainedModel


class RenameLayerScale(nn.Module):
    def __init__(self, dim, init_values=1e-5, inplace=False):
        super().__init__()
        self.inplace = inplace
        self.weight = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x.mul_(self.weight) if self.inplace else x * self.weight


timm.models.vision_transformer.LayerScale = RenameLayerScale


class KEEPConfig(PretrainedConfig):
    model_type = "keep"

    def __init__(self, vision_config=None, text_config=None, projection_dim=768, **kwargs):
        super().__init__(**kwargs)
        self.vision_config = vision_config
        self.text_config = text_config
        self.projection_dim = projection_dim


class KEEPModel(PreTrainedModel):
    config_class = KEEPConfig

    def __init__(self, config):
        super().__init__(config)
        size = {k: v for k, v in (config.vision_config or {}).items() if k in ("depth", "embed_dim", "num_heads")}
        self.visual = timm.create_model("vit_large_patch16_224", pretrained=False, img_size=224, patch_size=16,
                                        init_values=1e-5, num_classes=0, dynamic_img_size=True, **size)
        self.visual_head = nn.Sequential(nn.Linear(self.visual.num_features, config.projection_dim), nn.GELU(),
                                         nn.Linear(config.projection_dim, config.projection_dim))
        self.text = BertModel(BertConfig(**config.text_config))
        self.logit_scale = nn.Parameter(torch.ones([]) * numpy.log(1 / 0.04))

    def encode_image(self, image_inputs):
        vision_features = self.visual(image_inputs)
        return torch.nn.functional.normalize(self.visual_head(vision_features), dim=-1)

    def encode_text(self, text_inputs):
        return torch.nn.functional.normalize(self.text(**text_inputs).pooler_output, dim=-1)

    def forward(self, image_inputs, text_inputs):
        return {"vision_features": self.encode_image(image_inputs), "text_features": self.encode_text(text_inputs)}
'''


def reference_modules(vocab_size: int, seed: int = 0):
    """KEEP's three parts as plain timm / transformers modules (timm's own LayerScale)."""
    import timm
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    visual = timm.create_model("vit_large_patch16_224", pretrained=False, img_size=224, patch_size=16,
                               init_values=1e-5, num_classes=0, dynamic_img_size=True, **VISION).eval()
    head = torch.nn.Sequential(torch.nn.Linear(VISION["embed_dim"], PROJECTION), torch.nn.GELU(),
                               torch.nn.Linear(PROJECTION, PROJECTION)).eval()
    text = BertModel(BertConfig(vocab_size=vocab_size, **TEXT)).eval()
    with torch.no_grad():  # visible LayerScale, so the renamed parameter matters
        for n, p in visual.named_parameters():
            if n.endswith("gamma"):
                p.fill_(0.5)
    return visual, head, text


def _vocab(words: str) -> list[str]:
    import re

    toks = sorted({w for w in re.findall(r"[a-z]+|[^\sa-z]", words.lower())})
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + toks


def save_tiny_keep(folder: Path, words: str, seed: int = 0):
    """Write the twin; returns (visual, head, text, tokenizer) for an independent computation."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(_vocab(words)) + "\n")
    tok = BertTokenizer(vocab_file=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=512)
    tok.save_pretrained(folder)
    visual, head, text = reference_modules(len(tok), seed)
    cfg = {"architectures": ["KEEPModel"], "model_type": "keep", "projection_dim": PROJECTION,
           "auto_map": {"AutoConfig": "modeling_keep.KEEPConfig", "AutoModel": "modeling_keep.KEEPModel"},
           "vision_config": dict(VISION),
           "text_config": {"model_type": "bert", "vocab_size": len(tok), **TEXT}}
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    (folder / "modeling_keep.py").write_text(MODELING)
    sd = {f"visual.{k.replace('.gamma', '.weight')}": v for k, v in visual.state_dict().items()}
    sd.update({f"visual_head.{k}": v for k, v in head.state_dict().items()})
    sd.update({f"text.{k}": v for k, v in text.state_dict().items() if not k.endswith("position_ids")})
    sd["logit_scale"] = torch.tensor(float(torch.log(torch.tensor(LOGIT_SCALE))))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    return visual, head, text, tok
