"""``cytoreg models check``: are a model spec's weights on this machine, and do its config and
processor load (nothing is downloaded, no weights are read)? Every failure becomes a line of the
report that says what to do (for a gated repo: where to accept the licence), never a traceback."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytoreg.models.weights import hf_cache_dir

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")
API_ADAPTERS = ("openai", "gemini", "anthropic", "vlmeval")
HF_ADAPTERS = ("hf", "hf_clip", "hf_features", "hf_hidden", "hf_remote_clip")


@dataclass
class Check:
    name: str
    adapter: str
    source: str = ""
    ready: bool = False
    lines: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, text: str) -> None:
        self.lines.append((key, text))


def _source(spec: Any) -> tuple[str, str]:
    """(kind, where): kind is hub | hubfile (one file of a hub repo: org/repo/file) | folder | file | env | none."""
    adapter, p = spec.get("adapter"), dict(spec.get("params") or {})
    if adapter in API_ADAPTERS:
        return "none", f"served by the {adapter} adapter: no local weights"
    if adapter in ("random", "prior"):
        return "none", "a weightless baseline"
    ckpt = p.get("checkpoint")
    if not ckpt and p.get("checkpoint_env"):
        ckpt = os.environ.get(p["checkpoint_env"])
        if not ckpt:
            return "env", p["checkpoint_env"]
    if ckpt and str(ckpt).startswith(("hf-hub:", "hf_hub:")):
        return "hubfile", str(ckpt).split(":", 1)[1]
    if ckpt:
        return "file", os.path.expandvars(str(ckpt))
    pre = str(p.get("pretrained") or "")
    if adapter == "open_clip" and pre.endswith((".pt", ".pth", ".bin", ".safetensors")):  # a config + file
        return "file", os.path.expandvars(pre)
    ref = str(p.get("pretrained") or p.get("model") or "")
    for prefix in ("hf-hub:", "hf_hub:"):
        if ref.startswith(prefix):
            return "hub", ref[len(prefix):]
    if ref.startswith("local-dir:"):
        return "folder", ref[len("local-dir:"):]
    if adapter == "timm" and ref:
        return "hub", f"timm/{p['arch']}.{ref}"
    if ref and (ref.startswith(("/", ".", "~")) or Path(ref).expanduser().is_dir()):
        return "folder", ref
    if ref and "/" in ref:
        return "hub", ref
    return "none", f"adapter {adapter}: nothing to check ({ref or 'no params.model'})"


def _snapshot(repo: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, revision=revision, local_files_only=True, cache_dir=str(hf_cache_dir())))
    except Exception:  # not in the cache (LocalEntryNotFoundError and friends)
        return None


def _weights(folder: Path) -> list[Path]:
    files = [f for f in folder.iterdir() if f.name.endswith(WEIGHT_SUFFIXES) and f.name != "training_args.bin"]
    index = [f for f in folder.glob("*.index.json")]
    for idx in index:  # sharded checkpoints: every shard named in the index must be there
        try:
            shards = set(json.loads(idx.read_text()).get("weight_map", {}).values())
        except (OSError, ValueError):
            continue
        missing = [s for s in shards if not (folder / s).exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(shards)} shards named in {idx.name} are missing "
                                    f"(e.g. {sorted(missing)[0]})")
    return sorted(files)


def _size(files: list[Path]) -> str:
    n = sum(f.stat().st_size for f in files if f.exists())
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _loadable(spec: Any, folder: Path) -> str:
    """Config (+ processor) from the folder without reading weights; returns what loaded."""
    adapter = spec.get("adapter")
    if adapter == "timm":
        import timm

        cfg = json.loads((folder / "config.json").read_text())
        arch = cfg.get("architecture")
        if not timm.is_model(arch):
            raise ValueError(f"config.json names architecture {arch!r}, which the installed timm "
                             f"{timm.__version__} does not have")
        return f"timm architecture {arch}"
    if adapter in ("open_clip",):
        cfg = json.loads((folder / "open_clip_config.json").read_text())
        return f"open_clip config ({', '.join(sorted(cfg.get('model_cfg', {})))})"
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    trust = bool(spec.get("trust_remote_code", False))
    if adapter == "hf_remote_clip":  # the remote module runs (trusted): its timm swaps stay inside
        from transformers import AutoTokenizer

        from cytoreg.models.hf_remote_clip import confined_globals

        if not trust:
            raise ValueError(f"the checkpoint runs its own model code: set trust_remote_code: true in {spec.path}")
        with confined_globals(str(folder)):
            cfg = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
            tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
        return f"{type(cfg).__name__} ({cfg.model_type}), {type(tok).__name__}"
    cfg = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust)
    if adapter == "hf_features":
        from transformers import AutoImageProcessor

        proc = AutoImageProcessor.from_pretrained(str(folder), trust_remote_code=trust)
    else:
        from transformers import AutoProcessor

        proc = AutoProcessor.from_pretrained(str(folder), trust_remote_code=trust)
    return f"{type(cfg).__name__} ({cfg.model_type}), {type(proc).__name__}"


def _check_hub_file(c: Check, spec: Any, where: str) -> Check:
    """One weights file of a hub repo (``checkpoint: hf-hub:org/repo/file``): cached or not; for
    timm, whether the installed timm has the architecture."""
    from cytoreg.models.weights import hub_cached

    parts = where.split("/")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    gated = spec.get("gated")
    if not hub_cached(repo, filename):
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        c.add("weights", f"missing: {filename} of {repo} is not in the Hugging Face cache {hf_cache_dir()}{offline}")
        how = f"hf download {repo} {filename}"
        c.add("get it", f"accept the licence at {gated}, then hf auth login and {how}" if gated else how)
        return c
    from huggingface_hub import try_to_load_from_cache

    path = Path(try_to_load_from_cache(repo, filename, cache_dir=str(hf_cache_dir())))
    c.add("weights", f"present: {path} ({_size([path])})")
    arch = (spec.get("params") or {}).get("arch")
    if spec.get("adapter") == "timm" and arch:
        import timm

        if timm.is_model(arch):
            c.add("loads", f"timm architecture {arch}")
            c.ready = True
        else:
            c.add("loads", f"no: the installed timm {timm.__version__} has no architecture {arch}")
    else:
        c.ready = True
    if gated:
        c.add("licence", f"gated repo; its licence was accepted at {gated} by whoever downloaded it")
    return c


def check(spec: Any) -> Check:
    c = Check(spec.name, str(spec.get("adapter")))
    if spec.get("adapter") == "musk":  # one safetensors file: hf_hub: in the cache, a file or a folder
        from cytoreg.models.musk_adapter import models_check

        return models_check(spec, c)
    kind, where = _source(spec)
    c.source = where
    gated = spec.get("gated")
    if kind == "none":
        c.add("weights", where)
        c.ready = True
        return c
    if kind == "env":
        c.add("weights", f"missing: set {where} to the checkpoint file")
        hint = (spec.get("params") or {}).get("download_hint")
        if hint:
            c.add("get it", hint)
        return c
    if kind == "hubfile":
        return _check_hub_file(c, spec, where)
    if kind == "file":
        path = Path(where).expanduser()
        if path.is_file():
            c.add("weights", f"present: {path} ({_size([path])})")
            c.ready = True
        else:
            c.add("weights", f"missing: {path} does not exist")
            hint = (spec.get("params") or {}).get("download_hint")
            if hint:
                c.add("get it", hint)
        return c
    if kind == "folder":
        folder = Path(where).expanduser()
        if not folder.is_dir():
            c.add("weights", f"missing: the folder {folder} does not exist")
            return c
    else:
        revision = (spec.get("params") or {}).get("revision")
        folder = _snapshot(where, revision)
        if folder is None:
            offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
            c.add("weights", f"missing: {where} is not in the Hugging Face cache {hf_cache_dir()}{offline}")
            how = f"hf download {where}"
            c.add("get it", f"accept the licence at {gated}, then hf auth login and {how}" if gated else how)
            return c
    try:
        files = _weights(folder)
    except FileNotFoundError as exc:
        c.add("weights", f"incomplete: {folder}: {exc}")
        return c
    if not files:
        c.add("weights", f"missing: {folder} has a config but no weight file (*.safetensors, *.bin, *.pth)")
        return c
    c.add("weights", f"present: {folder} ({len(files)} file{'s' * (len(files) > 1)}, {_size(files)})")
    try:
        c.add("loads", _loadable(spec, folder))
        c.ready = True
    except Exception as exc:  # the library's own words, first line, with the file it was reading
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        c.add("loads", f"no: {type(exc).__name__}: {first}")
    if gated:
        c.add("licence", f"gated repo; its licence was accepted at {gated} by whoever downloaded it")
    return c
