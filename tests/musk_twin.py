"""Helpers for the MUSK tests: the interface double installed in a temporary folder (with a tiny
sentencepiece model as its ``musk/models/tokenizer.spm``), the README's zero-shot recipe computed
directly, and the token ids the README's transformers-4 ``XLMRobertaTokenizer`` gives."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOUBLE = Path(__file__).parent / "musk_double" / "musk"
#: the README / demo.ipynb zero-shot numbers, typed from lilab-stanford/MUSK (README.md, demo.ipynb)
README = {"size": 384, "interpolation": 3, "max_len": 100, "model_key": "model|module", "model_prefix": "",
          "call": {"with_head": True, "out_norm": True, "ms_aug": False, "return_global": True}}


def purge_musk() -> None:
    """Forget any imported ``musk`` (the double and the real package register the same timm name)."""
    for name in [m for m in sys.modules if m == "musk" or m.startswith("musk.")]:
        del sys.modules[name]


def install_double(root: Path, words: str, tokenizer: bool = True) -> Path:
    """Copy the double to ``root/musk`` and train a tiny sentencepiece model on ``words`` as its
    tokenizer (ids laid out as MUSK's: <unk> 0, <s> 1, </s> 2). Returns ``root``."""
    import sentencepiece as spm

    shutil.copytree(DOUBLE, root / "musk", ignore=shutil.ignore_patterns("__pycache__"))
    if tokenizer:
        models = root / "musk" / "models"
        models.mkdir()
        corpus = root / "corpus.txt"
        corpus.write_text("\n".join([words] * 20))
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(models / "tokenizer"), vocab_size=120,
                                       model_type="unigram", hard_vocab_limit=False, minloglevel=2)
        (models / "tokenizer.model").rename(models / "tokenizer.spm")
        (models / "tokenizer.vocab").unlink()
        corpus.unlink()
    return root


def readme_ids(spm_file: Path, text: str, max_len: int = 100) -> tuple[list[int], list[int]]:
    """What ``musk.utils.xlm_tokenizer(text, XLMRobertaTokenizer(spm), max_len)`` gives under
    transformers 4 (the README's environment), computed from sentencepiece alone: the slow
    XLM-R tokenizer maps piece p to p + 1 (fairseq offset), sentencepiece's <unk> (0) to 3, and uses
    <s> 0, <pad> 1, </s> 2."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_file))
    body = [p + 1 if p else 3 for p in sp.encode(text)][: max_len - 2]
    ids = [0, *body, 2]
    return ids + [1] * (max_len - len(ids)), [0] * len(ids) + [1] * (max_len - len(ids))


def readme_transform():
    """The README's image transform, as written there."""
    import torchvision
    from timm.data.constants import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD

    return torchvision.transforms.Compose([
        torchvision.transforms.Resize(README["size"], interpolation=README["interpolation"], antialias=True),
        torchvision.transforms.CenterCrop((README["size"], README["size"])),
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize(mean=IMAGENET_INCEPTION_MEAN, std=IMAGENET_INCEPTION_STD),
    ])


def readme_probs(model, spm_file: Path, images: list, prompts: list[list[str]]):
    """The README's zero-shot recipe on ``model`` (fp32): image and text embeddings with the
    head and normalisation, each label's prompt embeddings averaged and renormalised (cytoreg's
    ensemble; one prompt per label is the README's case), softmax(model.logit_scale × cosine)."""
    import torch

    call = README["call"]
    with torch.inference_mode():
        x = torch.stack([readme_transform()(im) for im in images])
        img = model(image=x, **call)[0]
        rows = []
        for texts in prompts:
            enc = [readme_ids(spm_file, t, README["max_len"]) for t in texts]
            ids = torch.tensor([e[0] for e in enc])
            pad = torch.tensor([e[1] for e in enc])
            t = model(text_description=ids, padding_mask=pad, **call)[1]
            rows.append(torch.nn.functional.normalize(t.mean(0), dim=0))
        sim = model.logit_scale * img @ torch.stack(rows).T
        return sim.softmax(dim=-1).numpy()
