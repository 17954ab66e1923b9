"""Where model weights come from, shared by the local adapters: the Hugging Face cache, cheap
identities of weight files (for cache fingerprints), device choice, and the one error a user
sees when weights are not there. Imports torch only inside :func:`pick_device`."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cytoreg.errors import ModelLoadError


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def file_identity(path: Path) -> str:
    """Size + hash of the first and last MiB: cheap for multi-GB weights, changes when they change."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return f"{size}:{h.hexdigest()[:16]}"


def pick_device(requested: str | None) -> str:
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"--device {requested} was asked for, but torch sees no CUDA device; use --device cpu")
        if requested == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ModelLoadError("--device mps was asked for, but torch sees no Apple MPS device; use --device cpu")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def hub_identity(model_id: str, revision: str | None) -> str:
    """A local folder: its weight files' identities; a hub id: id@revision."""
    p = Path(model_id).expanduser()
    if p.is_dir():
        files = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
        return f"{p}|" + ",".join(file_identity(f) for f in files)
    return f"{model_id}@{revision or 'main'}"


def library_words(exc: BaseException) -> str:
    """A library's error as one line, without advice cytoreg must never give (``weights_only=False``)."""
    text = str(exc).strip()
    if "weights_only" in text or type(exc).__name__ == "UnpicklingError":
        return (f"{type(exc).__name__}: the checkpoint holds pickled Python objects a weights-only load refuses, "
                "or is corrupt; cytoreg never unpickles them (`cytoreg models check` names the file)")
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def hub_missing(model_name: str, model_id: str, what: str, hint: str | None, exc: Exception) -> ModelLoadError:
    """The error for a transformers ``from_pretrained`` that found nothing: where it looked, how to get it."""
    where = (f"the folder {model_id}" if Path(model_id).expanduser().is_dir() else
             f"the Hugging Face cache {hf_cache_dir()} (models--{model_id.replace('/', '--')})")
    offline = " HF_HUB_OFFLINE is set, so nothing was downloaded." if os.environ.get("HF_HUB_OFFLINE") else ""
    how = hint or f"hf download {model_id} on a machine with network"
    first = library_words(exc)
    return ModelLoadError(f"model '{model_name}': cannot load {model_id}{what}; looked in {where}.{offline} "
                          f"Get it: {how}. ({first})")


def hub_cached(repo: str, filename: str | None = None) -> bool:
    """Whether ``repo`` (or one file of it) is in the local Hugging Face cache; never touches the
    network."""
    folder = hf_cache_dir() / f"models--{repo.replace('/', '--')}"
    if filename is None:
        snaps = folder / "snapshots"
        return snaps.is_dir() and any(snaps.iterdir())
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return any((folder / "snapshots").glob(f"*/{filename}"))
    hit = try_to_load_from_cache(repo, filename, cache_dir=str(hf_cache_dir()))
    return isinstance(hit, str)


def hub_check(model_name: str, model_id: str, hint: str | None, filename: str | None = None) -> list[str]:
    """Preflight: the weights of a local folder or hub id are here, without loading anything."""
    p = Path(model_id).expanduser()
    if p.is_dir():
        return []
    if model_id.startswith(("/", "./", "../", "~")):
        return [f"model '{model_name}': weights folder {model_id} does not exist"]
    if hub_cached(model_id, filename):
        return []
    how = hint or f"hf download {model_id} on a machine with network"
    return [f"model '{model_name}': weights {model_id} are not in the Hugging Face cache {hf_cache_dir()} "
            f"(models--{model_id.replace('/', '--')}). Get them: {how}"]
