"""Where model weights come from, shared by the local adapters: the Hugging Face cache, cheap
identities of weight files (for cache fingerprints), device choice, and the one error a user
sees when weights are not there. Imports torch only inside :func:`pick_device`."""
from __future__ import annotations

import hashlib
import os
import re
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


def hub_properties(example: str = "") -> dict:
    """The JSON-schema properties every Hugging Face hub adapter takes: ``model``, ``revision``,
    ``download_hint``."""
    return {"model": {"type": "string", "description": f"Hugging Face repo id{f' ({example})' if example else ''} "
                                                       "or a local folder"},
            "revision": {"type": "string"},
            "download_hint": {"type": "string"}}


def precision_dtype(torch, precision: str | None, device: str):
    """``params.precision`` as a torch dtype; CPU always runs fp32."""
    if device == "cpu":
        return torch.float32
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision or "fp32", torch.float32)


def hub_identity(model_id: str, revision: str | None) -> str:
    """A local folder: its weight files' identities; a hub id: id@revision."""
    p = Path(model_id).expanduser()
    if p.is_dir():
        files = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
        return f"{p}|" + ",".join(file_identity(f) for f in files)
    return f"{model_id}@{revision or 'main'}"


#: transformers' words for a file missing from a local copy, and what cytoreg says instead
_NAMED_FILE = re.compile(r"does not appear to have a file named ([\w./-]*\w)")
_CONTAINING = re.compile(r"containing a ([\w./-]*\w) file")
_NO_NETWORK = "couldn't connect to 'https://huggingface.co'"
_SAME_NAME = "make sure you don't have a local directory with the same name"


def _named_files(text: str) -> list[str]:
    return _NAMED_FILE.findall(text) + _CONTAINING.findall(text)


def library_words(exc: BaseException) -> str:
    """A library's error as one line, without advice cytoreg must never give (``weights_only=False``)
    and without transformers' hub words for a file missing from a local copy (a URL made of a cache
    path, "couldn't connect" when nothing was meant to connect, "a local directory with the same name")."""
    text = str(exc).strip()
    kind = type(exc).__name__
    if "weights_only" in text or kind == "UnpicklingError":
        return (f"{kind}: the checkpoint holds pickled Python objects a weights-only load refuses, "
                "or is corrupt; cytoreg never unpickles them (`cytoreg models check` names the file)")
    named = _named_files(text)
    if named or _SAME_NAME in text or (_NO_NETWORK in text and os.environ.get("HF_HUB_OFFLINE")):
        what = (f"{', '.join(dict.fromkeys(named))} is missing" if named
                else "a file the loader needs is missing")
        return f"{kind}: {what} (HF_HUB_OFFLINE is set, so nothing was fetched)" if (
            os.environ.get("HF_HUB_OFFLINE") and _NO_NETWORK in text) else f"{kind}: {what}"
    return f"{kind}: {text.splitlines()[0] if text else ''}"


def local_copy(model_id: str, revision: str | None = None) -> Path | None:
    """The folder a transformers load reads ``model_id`` from: the folder itself, or its snapshot
    in the Hugging Face cache (never the network); None when there is none."""
    p = Path(model_id).expanduser()
    if p.is_dir():
        return p
    if model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, revision=revision, local_files_only=True,
                                      cache_dir=str(hf_cache_dir())))
    except Exception:  # noqa: BLE001 - not in the cache
        return None


def lacking_files(folder: Path, exc: BaseException) -> list[str]:
    """Files of a local copy that a failed load needed and the copy does not hold: those the
    library's message names, else the ``auto_map`` modules, and a processor's config where the
    message is about a processor."""
    from cytoreg.models.check import PROCESSOR_FILES, _auto_map_modules

    text = str(exc)
    names = [n for n in dict.fromkeys(_named_files(text)) if not (folder / n).is_file()]
    if not names:
        names = [n for n in _auto_map_modules(folder) if not (folder / n).is_file()]
    if not names and "processor" in text.lower() and not any((folder / n).is_file() for n in PROCESSOR_FILES):
        names = [" or ".join(PROCESSOR_FILES)]
    return names


def hub_missing(model_name: str, model_id: str, what: str, hint: str | None, exc: Exception) -> ModelLoadError:
    """The error for a transformers ``from_pretrained`` that found nothing: where it looked, how to get
    it. Where a copy is here (a folder, or the repo in the cache) and the load failed on a file it
    lacks, that file is named with the fix for a partial download; the network is not blamed."""
    folder = local_copy(model_id)
    is_dir = Path(model_id).expanduser().is_dir()
    if folder is not None:
        lacking = lacking_files(folder, exc)
        text = str(exc)
        if lacking or _SAME_NAME in text or _NO_NETWORK in text or _named_files(text):
            cached = re.search(r"models--([^/]+)--([^/]+)/snapshots/", str(folder.resolve()) + "/")
            repo = f"{cached.group(1)}/{cached.group(2)}" if cached else None
            where = f"the snapshot {folder}" if repo else f"the folder {folder}"
            fix = f"hf download {repo} --force-download" if repo else "copy the complete model folder there again"
            files = ", ".join(lacking) or "a file the loader needs"
            verb = "are" if len(lacking) > 1 else "is"
            return ModelLoadError(f"model '{model_name}': cannot load {model_id}{what}: {files} {verb} missing from "
                                  f"{where} (a partial download?): {fix}")
    where = (f"the folder {model_id}" if is_dir else
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
