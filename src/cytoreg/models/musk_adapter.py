"""MUSK (Xiang et al., Nature 2025), zero-shot through the authors' own package.

MUSK's model code exists only in the GitHub repository lilab-stanford/MUSK (PyPI's ``musk`` is
an unrelated project), under CC-BY-NC-ND 4.0, so cytoreg neither ships nor patches it: this
adapter calls the installed package exactly as its README and ``demo.ipynb`` do.

- model: ``timm.create_model("musk_large_patch16_384")`` (registered by ``import musk.modeling``),
  weights by ``musk.utils.load_model_and_may_interpolate(path, model, "model|module", "")``. The
  file is resolved here (the Hugging Face cache for ``hf_hub:xiangjx/musk``, else a path) and its
  key names and shapes are compared with the architecture first, because the package only
  prints missing keys and shape errors and goes on with random weights.
- text: transformers' ``XLMRobertaTokenizer`` over the package's ``musk/models/tokenizer.spm``,
  ids and padding mask from ``musk.utils.xlm_tokenizer(text, tokenizer, max_len=100)``, then
  ``model(text_description=…, padding_mask=…, with_head=True, out_norm=True)[1]``.
- images: Resize(384, bicubic) → CenterCrop(384) → ToTensor → Normalize(0.5, 0.5) (timm's
  inception constants), ``model(image=…, with_head=True, out_norm=True, ms_aug=False)[0]``.
- probabilities: ``softmax(model.logit_scale × cosine)`` over labels, the README's zero-shot
  line, which multiplies by the parameter itself (not its exp, as CLIP does).

torch, timm, transformers and musk are imported only when the model is loaded."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import Embedder
from cytoreg.models.timm_features import PREPROCESS_SCHEMA, build_transform
from cytoreg.models.weights import file_identity, hf_cache_dir, hub_cached, pick_device

log = logging.getLogger("cytoreg.models.musk")

#: what to run when the package is missing; a plain ``pip install git+…`` builds a wheel without
#: musk/models/tokenizer.spm (not package data in its pyproject), so the README's editable install
INSTALL = ("git clone https://github.com/lilab-stanford/MUSK && pip install -e ./MUSK 'cytoreg[musk]' (the "
           "README's editable install; `pip install git+https://github.com/lilab-stanford/MUSK` installs the code but "
           "leaves out musk/models/tokenizer.spm, then set params.tokenizer to a copy). PyPI's `musk` is an "
           "unrelated package")
WEIGHTS_FILE = "model.safetensors"
#: what the README passes for zero-shot (image and text alike)
ZERO_SHOT_CALL = {"with_head": True, "out_norm": True, "ms_aug": False, "return_global": True}
#: the one key whose shape may differ: the package interpolates it to the architecture's image size
POS_EMBED_KEY = "beit3.encoder.embed_positions.A.weight"


def _hub_repo(ref: str) -> str | None:
    for prefix in ("hf_hub:", "hf-hub:"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return None


def package_dir() -> Path | None:
    """The installed ``musk`` package's folder, found without importing it."""
    spec = importlib.util.find_spec("musk")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def load_xlmr_tokenizer(spm: Path, where: str):
    """transformers' ``XLMRobertaTokenizer`` over MUSK's sentencepiece file, as the README's
    ``XLMRobertaTokenizer(path)`` builds it under transformers 4 (ids = piece id + 1, ``<s>`` 0,
    ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3). transformers 5 rejects that call, and
    ``vocab_file=…tokenizer.spm`` there silently gives a 5-token vocabulary (every word ``<unk>``)
    because it converts only files named ``*.model``; loading a folder holding the file as
    ``sentencepiece.bpe.model`` converts it in both versions. The vocabulary size is checked."""
    import shutil
    import tempfile

    import sentencepiece
    from transformers import XLMRobertaTokenizer

    pieces = sentencepiece.SentencePieceProcessor(model_file=str(spm)).get_piece_size()
    with tempfile.TemporaryDirectory(prefix="cytoreg-musk-tok-") as tmp:
        shutil.copyfile(spm, Path(tmp) / "sentencepiece.bpe.model")
        tok = XLMRobertaTokenizer.from_pretrained(tmp)
    if len(tok) != pieces + 2:  # + fairseq offset (<pad>) + <mask>
        import transformers

        raise ModelLoadError(f"{where}: transformers {transformers.__version__} read the MUSK tokenizer {spm} as "
                             f"{len(tok)} tokens, not the {pieces} sentencepiece pieces + 2 of XLMRobertaTokenizer; "
                             "texts would not be encoded as MUSK was trained")
    return tok


def checkpoint_mismatch(path: Path, expected: dict[str, tuple[int, ...]]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong shape) keys of a safetensors file against an architecture's
    ``{name: shape}``, read from the file's header only."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    missing = sorted(set(expected) - set(have))
    unexpected = sorted(set(have) - set(expected))
    shapes = sorted(k for k in set(have) & set(expected) if have[k] != expected[k] and k != POS_EMBED_KEY)
    return missing, unexpected, shapes


def _import_musk(where: str):
    """``from musk import utils, modeling`` (registers the timm models), or an error saying how
    to install it."""
    import warnings

    try:
        with warnings.catch_warnings():  # musk imports timm.models.registry / .layers (deprecated aliases)
            warnings.simplefilter("ignore", FutureWarning)
            from musk import modeling, utils
    except ImportError as exc:
        raise ModelLoadError(f"{where} needs the MUSK package, which is not installed here ({exc}). Install it: "
                             f"{INSTALL}") from exc
    return utils, modeling


def _package_needs(pkg) -> tuple[str, ...]:
    """What the installed MUSK code imports beyond cytoreg's own needs (its vendored torchscale
    imports fairscale and einops), read from its source files without importing them."""
    if pkg is None:
        return ()
    text = ""
    for f in sorted(pkg.rglob("*.py"))[:500]:
        try:
            text += f.read_text(errors="replace")
        except OSError:
            continue
    return tuple(m for m in ("fairscale", "einops") if f"import {m}" in text or f"from {m}" in text)


class Musk(Embedder):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["checkpoint", "preprocess"],
        "properties": {
            "arch": {"type": "string", "description": "timm name registered by musk.modeling "
                                                      "(default musk_large_patch16_384)"},
            "checkpoint": {"type": "string", "description": "hf_hub:xiangjx/musk (read from the Hugging Face cache), "
                                                           "a model.safetensors file or a folder holding one"},
            "tokenizer": {"type": "string", "description": "MUSK's tokenizer.spm (default: musk/models/tokenizer.spm "
                                                          "of the installed package)"},
            "max_len": {"type": "integer", "minimum": 3, "description": "text length in tokens, padded "
                                                                        "(musk.utils.xlm_tokenizer's max_len)"},
            "preprocess": PREPROCESS_SCHEMA,
            "precision": {"enum": ["fp32", "fp16", "bf16"], "description": "on GPU; CPU always runs fp32"},
            "download_hint": {"type": "string"},
        },
    }
    DEFAULT_ARCH = "musk_large_patch16_384"

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.arch: str = self.params.get("arch", self.DEFAULT_ARCH)
        self.max_len: int = int(self.params.get("max_len", 100))
        self._model = None
        self._transform = None

    # where things are ----------------------------------------------------------------
    def _where(self) -> str:
        return f"model '{self.name}'"

    def _hint(self) -> str:
        return self.params.get("download_hint") or (
            "accept the conditions at https://huggingface.co/xiangjx/musk, hf auth login, then "
            "hf download xiangjx/musk model.safetensors")

    def _checkpoint(self) -> Path:
        """The weights file: from the Hugging Face cache for ``hf_hub:REPO`` (never downloaded
        here; the package's own ``hf_hub:`` route writes to ~/.cache/model.safetensors and reuses
        any file of that name), else the path (a folder: its model.safetensors)."""
        ref = os.path.expandvars(self.params["checkpoint"])
        repo = _hub_repo(ref)
        if repo is not None:
            try:
                from huggingface_hub import hf_hub_download

                return Path(hf_hub_download(repo, WEIGHTS_FILE, cache_dir=str(hf_cache_dir()), local_files_only=True))
            except Exception as exc:  # noqa: BLE001 - any hub failure means: not available here
                raise ModelLoadError(
                    f"{self._where()}: MUSK weights {ref} are not in the Hugging Face cache {hf_cache_dir()} "
                    f"(models--{repo.replace('/', '--')}/…/{WEIGHTS_FILE}). Get them: {self._hint()}. "
                    f"({type(exc).__name__})") from exc
        path = Path(ref).expanduser()
        if not path.is_absolute() and self.spec.path is not None:
            path = Path(self.spec.path).parent / path
        if path.is_dir():
            path = path / WEIGHTS_FILE
        if not path.is_file():
            raise ModelLoadError(f"{self._where()}: MUSK checkpoint {path} does not exist (params.checkpoint in "
                                 f"{self.spec.path}). Get it: {self._hint()}.")
        return path

    def _tokenizer_file(self) -> Path:
        if self.params.get("tokenizer"):
            path = Path(os.path.expandvars(self.params["tokenizer"])).expanduser()
            if not path.is_absolute() and self.spec.path is not None:
                path = Path(self.spec.path).parent / path
            if not path.is_file():
                raise ModelLoadError(f"{self._where()}: params.tokenizer {path} does not exist (MUSK's "
                                     "musk/models/tokenizer.spm from the GitHub repository)")
            return path
        pkg = package_dir()
        if pkg is None:
            raise ModelLoadError(f"{self._where()} needs the MUSK package, which is not installed here. "
                                 f"Install it: {INSTALL}")
        path = pkg / "models" / "tokenizer.spm"
        if not path.is_file():
            raise ModelLoadError(f"{self._where()}: the installed musk package ({pkg}) has no models/tokenizer.spm "
                                 "(a non-editable install leaves it out). Reinstall it editable (pip install -e "
                                 "./MUSK from a clone) or set params.tokenizer to the clone's musk/models/tokenizer.spm")
        return path

    def weights_identity(self) -> str:
        ref = self.params["checkpoint"]
        parts = [f"{self.arch}|{ref}"]
        repo = _hub_repo(ref)
        try:
            if repo is None or hub_cached(repo, WEIGHTS_FILE):  # never a network lookup for an identity
                parts.append(file_identity(self._checkpoint()))
        except ModelLoadError:
            pass
        try:
            parts.append("tok:" + file_identity(self._tokenizer_file()))
        except ModelLoadError:
            pass
        return "|".join(parts)

    def check(self) -> list[str]:
        out = []
        pkg = package_dir()
        needs = ("torch", "timm", "torchvision", "transformers", "sentencepiece", "safetensors") + _package_needs(pkg)
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if pkg is None or not (pkg / "modeling.py").is_file():
            missing.append("musk (lilab-stanford/MUSK)" if pkg is None else f"musk (lilab-stanford/MUSK; {pkg} is another "
                                                                            "package of that name)")
        if missing:
            out.append(f"{self._where()} needs {', '.join(missing)}. Install: {INSTALL}")
        if pkg is not None or self.params.get("tokenizer"):
            try:
                self._tokenizer_file()
            except ModelLoadError as exc:
                out.append(str(exc))
        ref = self.params["checkpoint"]
        repo = _hub_repo(ref)
        if repo is not None:
            if not hub_cached(repo, WEIGHTS_FILE):
                out.append(f"{self._where()}: MUSK weights {ref} are not in the Hugging Face cache {hf_cache_dir()} "
                           f"(models--{repo.replace('/', '--')}). Get them: {self._hint()}")
        else:
            try:
                self._checkpoint()
            except ModelLoadError as exc:
                out.append(str(exc))
        return out

    # loading -------------------------------------------------------------------------
    def build_architecture(self):
        """The random-weight architecture ``timm.create_model(arch)`` as registered by musk."""
        _import_musk(self._where())
        import timm

        if not timm.is_model(self.arch):
            raise ModelLoadError(f"{self._where()}: params.arch {self.arch!r} is not a timm model registered by the "
                                 f"installed musk package (it registers {', '.join(timm.list_models('musk*')) or 'none'})")
        return timm.create_model(self.arch)

    def load(self) -> None:
        try:
            import torch
        except ImportError as exc:
            raise ModelLoadError(f"{self._where()} needs torch: pip install 'cytoreg[musk]' ({exc})") from exc
        utils, _ = _import_musk(self._where())
        ckpt = self._checkpoint()
        spm = self._tokenizer_file()
        device = pick_device(self.device)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.params.get("precision", "fp32"), torch.float32)
        if device == "cpu":
            dtype = torch.float32
        model = self.build_architecture().eval()
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        try:
            missing, unexpected, shapes = checkpoint_mismatch(ckpt, expected)
        except Exception as exc:  # noqa: BLE001 - not a safetensors file, truncated header
            raise ModelLoadError(f"{self._where()}: cannot read {ckpt} as safetensors: {type(exc).__name__}: {exc}") from exc
        if missing or shapes:
            raise ModelLoadError(f"{self._where()}: {ckpt} does not fit {self.arch}: {len(missing)} weights missing "
                                 f"{missing[:4]}, {len(shapes)} of another shape {shapes[:4]}; the package would leave "
                                 "them random")
        if unexpected:
            log.warning("%s: %d keys of %s are not in %s and are ignored, as the package does: %s", self._where(),
                        len(unexpected), ckpt, self.arch, unexpected[:5])
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # the package prints its progress; keep stdout for cytoreg
            utils.load_model_and_may_interpolate(str(ckpt), model, "model|module", "")
        log.debug("musk.utils.load_model_and_may_interpolate: %s", printed.getvalue().strip())
        self._tokenizer = load_xlmr_tokenizer(spm, self._where())
        self._model = model.to(device=device, dtype=dtype).eval()
        self._utils, self._torch, self._device, self._dtype = utils, torch, device, dtype

    def _ensure(self) -> None:
        if self._model is None:
            self.load()

    def preprocess(self, image: Any):
        if self._transform is None:  # the card's transform; needs no weights (runs in DataLoader workers)
            self._transform = build_transform(self.params["preprocess"])
        return self._transform(image)

    def tokenize(self, texts: list[str]):
        """(ids, padding mask) as LongTensors (n, max_len), one ``musk.utils.xlm_tokenizer`` call per
        text as the README does."""
        self._ensure()
        torch = self._torch
        rows = [self._utils.xlm_tokenizer(t, self._tokenizer, max_len=self.max_len) for t in texts]
        return torch.tensor([r[0] for r in rows]), torch.tensor([r[1] for r in rows])

    def _normalised(self, x) -> np.ndarray:
        return self._torch.nn.functional.normalize(x.float(), dim=-1).cpu().numpy()

    def encode_batch(self, batch) -> np.ndarray:
        self._ensure()
        with self._torch.inference_mode():
            out = self._model(image=batch.to(self._device, dtype=self._dtype), **ZERO_SHOT_CALL)[0]
        return self._normalised(out)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self._ensure()
        out = []
        for i in range(0, len(texts), self.batch_size):
            ids, pad = self.tokenize(texts[i:i + self.batch_size])
            with self._torch.inference_mode():
                emb = self._model(text_description=ids.to(self._device), padding_mask=pad.to(self._device),
                                  **ZERO_SHOT_CALL)[1]
            out.append(self._normalised(emb))
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    def logit_scale(self) -> float:
        """The README's ``model.logit_scale`` as it is (MUSK's demo does not exponentiate it)."""
        self._ensure()
        return float(self._model.logit_scale.detach().float().item())

    def close(self) -> None:
        self._model = None


def loadable(spec: Any, path: Path) -> str:
    """``cytoreg models check``: the package, architecture and tokenizer load, and ``path``'s
    keys and shapes fit the architecture (built on the meta device: no memory, no weights read)."""
    import torch

    ad = Musk(spec)
    with torch.device("meta"):
        model = ad.build_architecture()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, unexpected, shapes = checkpoint_mismatch(path, expected)
    if missing or shapes:
        raise ValueError(f"{path.name} does not fit {ad.arch}: {len(missing)} weights missing {missing[:3]}, "
                         f"{len(shapes)} of another shape {shapes[:3]}")
    tok = load_xlmr_tokenizer(ad._tokenizer_file(), f"model '{spec.name}'")
    extra = f", {len(unexpected)} extra keys ignored" if unexpected else ""
    return f"musk {ad.arch}: {len(expected)} weights fit{extra}; XLM-R tokenizer {len(tok)} tokens"


def models_check(spec: Any, c: Any) -> Any:
    """Fill ``cytoreg models check``'s :class:`~cytoreg.models.check.Check` for a MUSK spec."""
    from cytoreg.models.check import _size

    ad = Musk(spec)
    c.source = ad.params["checkpoint"]
    try:
        path = ad._checkpoint()
    except ModelLoadError as exc:
        c.add("weights", f"missing: {str(exc).split(': ', 1)[1]}")
        return c
    c.add("weights", f"present: {path} ({_size([path])})")
    try:
        c.add("loads", loadable(spec, path))
        c.ready = True
    except Exception as exc:  # noqa: BLE001 - the package's or our words, first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        c.add("loads", f"no: {type(exc).__name__}: {first}")
    if spec.get("gated"):
        c.add("licence", f"gated repo; its conditions were accepted at {spec.get('gated')} by whoever downloaded it")
    return c
