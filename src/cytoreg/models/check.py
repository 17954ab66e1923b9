"""The one answer to "can this model run here?": its packages, its weights (Hugging Face cache,
folder or file: present, complete, not truncated), its API key and its endpoint, read from the
spec's params. ``cytoreg eval --check`` (and the preflight before every run) and
``cytoreg models check`` both ask :func:`check`; ``models check`` adds ``deep=True`` (config and
processor loaded, still no weights read). Nothing is downloaded or sent. Every problem is a line
that says what was looked for, where, and how to get it; never a library's traceback.

An adapter whose own ``check()`` adds something specific to it (a package, a tokenizer file) is
asked too; what it repeats about weights this module already found missing is dropped."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytoreg.models.integrity import damaged, expected_floor, unsafe_globals
from cytoreg.models.weights import hf_cache_dir, library_words

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")
API_ADAPTERS = ("openai", "gemini", "anthropic", "vlmeval")
HF_ADAPTERS = ("hf", "hf_clip", "hf_features", "hf_hidden", "hf_remote_clip")
#: config files read before any weights: a broken one is named here, not by json's own words
CONFIG_FILES = ("config.json", "preprocessor_config.json", "open_clip_config.json", "processor_config.json")

_HF = (("transformers", "torch"), "pip install 'cytoreg[hf]'")
_API = "pip install 'cytoreg[api]'"
#: adapter -> (modules it imports, how to install them)
PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "timm": (("timm", "torch", "torchvision"), "pip install 'cytoreg[clip]'"),
    "open_clip": (("open_clip", "torch"), "pip install 'cytoreg[clip]'"),
    "conch": (("conch", "torch"), "pip install conch-fork (or git+https://github.com/mahmoodlab/CONCH)"),
    "hf": _HF, "hf_clip": _HF, "hf_features": _HF, "hf_hidden": _HF, "hf_remote_clip": _HF,
    "openai": (("openai",), _API), "gemini": (("google.genai",), _API), "anthropic": (("anthropic",), _API),
    "vlmeval": (("vlmeval",), "pip install 'cytoreg[vlmeval]' (ms-vlmeval)"),
}
#: adapter -> (module, function) that loads what ``models check`` loads beyond config and processor
#: (called as ``fn(spec, Check)`` once the shared checks passed; it sets ``ready``)
DEEP_HOOKS: dict[str, tuple[str, str]] = {"musk": ("cytoreg.models.musk_adapter", "models_check")}
#: API adapter -> (key variables, any of which will do; the variable a base_url may come from)
ENDPOINTS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "openai": (("OPENAI_API_KEY",), "OPENAI_BASE_URL"),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), None),
    "anthropic": (("ANTHROPIC_API_KEY",), None),
}


@dataclass
class Check:
    """What :func:`check` found for one model: report lines, and the problems that stop a run."""

    name: str
    adapter: str
    source: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (category, message) for the preflight
    warnings: list[str] = field(default_factory=list)
    verdict: bool | None = field(default=None, repr=False)  # a deep hook's own word (see DEEP_HOOKS)

    @property
    def ready(self) -> bool:
        return not self.problems and self.verdict is not False

    @ready.setter
    def ready(self, value: bool) -> None:
        self.verdict = bool(value)

    def add(self, key: str, text: str) -> None:
        self.lines.append((key, text))

    def fail(self, category: str, key: str, text: str, get: str | None = None) -> None:
        """A problem: a report line ``key text`` (+ ``get it``), and the same words for the preflight."""
        self.add(key, text)
        if get:
            self.add("get it", get)
        self.problems.append((category, f"model '{self.name}': {key} {text}" + (f". Get it: {get}" if get else "")))

    def warn(self, key: str, text: str) -> None:
        self.add(key, f"warning: {text}")
        self.warnings.append(f"model '{self.name}': {text}")

    def messages(self) -> list[str]:
        return [m for _, m in self.problems]

    def to_json(self) -> dict:
        return {"name": self.name, "adapter": self.adapter, "source": self.source, "ready": self.ready,
                "lines": [{"key": k, "text": t} for k, t in self.lines],
                "problems": [{"category": c, "message": m} for c, m in self.problems], "warnings": self.warnings}


@dataclass
class Source:
    kind: str  # hub | folder | file | env | api | none
    where: str
    origin: str = ""  # the spec field it came from
    filename: str | None = None  # one file of a hub repo (CONCH's pytorch_model.bin)


def how_to_get(spec: Any, repo: str | None = None, filename: str | None = None) -> str:
    """The one "get it" wording: for a gated hub repo the licence, the login and the download;
    else the spec's ``download_hint``, else ``hf download``."""
    hint = " ".join(str((spec.get("params") or {}).get("download_hint") or "").split())
    gated = spec.get("gated")
    if repo is None:
        return hint
    step = f"hf download {repo}{' ' + filename if filename else ''}"
    if gated:
        line = f"accept the licence at {gated}, then hf auth login and {step} on a machine with network"
        return f"{line}; {hint}" if hint and repo not in hint else line
    return hint or f"{step} on a machine with network"


def _is_pathlike(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or Path(ref).expanduser().is_dir()


def _hub_ref(ref: str) -> str | None:
    for prefix in ("hf-hub:", "hf_hub:"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return None


def _relative_to_spec(spec: Any, ref: str) -> Path:
    """A path in a spec, relative to the spec's file (as the conch adapter reads it)."""
    path = Path(os.path.expandvars(ref)).expanduser()
    if not path.is_absolute() and getattr(spec, "path", None) is not None:
        path = Path(spec.path).parent / path
    return path


def _open_clip_tag(model: str, tag: str) -> str | None:
    """The hub repo open_clip fetches ``tag`` of ``model`` from (None: a URL download, or unknown)."""
    try:
        from open_clip.pretrained import get_pretrained_cfg

        return (get_pretrained_cfg(model, tag) or {}).get("hf_hub", "").strip("/") or None
    except Exception:  # noqa: BLE001 - an unknown tag: open_clip names it at load time
        return None


def _source(spec: Any) -> Source:
    """Where the spec says the weights (or the endpoint) are."""
    adapter, p = spec.get("adapter"), dict(spec.get("params") or {})
    if adapter in API_ADAPTERS:
        return Source("api", f"served by the {adapter} adapter")
    if adapter in ("random", "prior"):
        return Source("none", "a weightless baseline")
    if adapter == "conch":
        ref = str(p.get("checkpoint", ""))
        repo = _hub_ref(ref)
        if repo:
            return Source("hub", repo, "params.checkpoint", "pytorch_model.bin")
        return Source("file", str(_relative_to_spec(spec, ref)), "params.checkpoint")
    ckpt = p.get("checkpoint")
    if not ckpt and p.get("checkpoint_env"):
        ckpt = os.environ.get(p["checkpoint_env"])
        if not ckpt and not p.get("pretrained"):
            return Source("env", p["checkpoint_env"], "params.checkpoint_env")
    if ckpt and _hub_ref(str(ckpt)):  # hf-hub:<org>/<repo> or hf-hub:<org>/<repo>/<file> (one file of it)
        parts = _hub_ref(str(ckpt)).split("/")
        return Source("hub", "/".join(parts[:2]), "params.checkpoint", "/".join(parts[2:]) or None)
    if ckpt:
        path = Path(os.path.expandvars(str(ckpt))).expanduser()
        if path.is_dir() and adapter not in ("timm", "open_clip"):  # a folder of weights (MUSK takes one)
            return Source("folder", str(path), "params.checkpoint")
        return Source("file", str(path), "params.checkpoint")
    if adapter == "open_clip":
        model, pre = str(p.get("model", "")), str(p.get("pretrained") or "")
        if _hub_ref(model):
            return Source("hub", _hub_ref(model), "params.model")
        if model.startswith("local-dir:"):
            return Source("folder", model[len("local-dir:"):], "params.model")
        if pre and ("/" in pre or os.sep in pre or pre.endswith(WEIGHT_SUFFIXES)):
            return Source("file", pre, "params.pretrained")
        repo = _open_clip_tag(model, pre) if pre else None
        if repo:
            return Source("hub", repo, "params.pretrained")
        return Source("none", f"open_clip's pretrained tag '{pre}' for {model} (downloaded by open_clip to its "
                              "own cache; not checked here)" if pre else f"{model} without pretrained weights")
    ref = str(p.get("pretrained") or p.get("model") or "")
    origin = "params.pretrained" if p.get("pretrained") else "params.model"
    if _hub_ref(ref):
        return Source("hub", _hub_ref(ref), origin)
    if ref.startswith("local-dir:"):
        return Source("folder", ref[len("local-dir:"):], origin)
    if adapter == "timm":
        if ref:
            return Source("hub", f"timm/{p['arch']}.{ref}", origin)
        return Source("none", f"timm {p.get('arch')} with random weights (no params.pretrained / checkpoint)")
    if ref.endswith(WEIGHT_SUFFIXES) and (adapter in HF_ADAPTERS or _is_pathlike(ref) or os.sep in ref):
        return Source("file", ref, origin)
    if adapter in HF_ADAPTERS:
        return Source("folder" if _is_pathlike(ref) else "hub", ref, origin)
    if ref and _is_pathlike(ref):  # another adapter (a plugin): only what is clearly a hub id or a path
        return Source("folder", ref, origin)
    return Source("none", f"no weights cytoreg can locate in the spec's params ({adapter} adapter"
                          f"{': ' + ref if ref else ''}); the adapter's own check() answers")


def _snapshot(repo: str, revision: str | None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, revision=revision, local_files_only=True, cache_dir=str(hf_cache_dir())))
    except Exception:  # noqa: BLE001 - not in the cache (LocalEntryNotFoundError and friends)
        return None


def _weights(folder: Path) -> list[Path]:
    files = [f for f in folder.iterdir() if f.name.endswith(WEIGHT_SUFFIXES) and f.name != "training_args.bin"]
    for idx in folder.glob("*.index.json"):  # sharded checkpoints: every shard named in the index must be there
        try:
            shards = set(json.loads(idx.read_text()).get("weight_map", {}).values())
        except (OSError, ValueError):
            continue
        missing = [s for s in shards if not (folder / s).exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(shards)} shards named in {idx.name} are missing "
                                    f"(e.g. {sorted(missing)[0]})")
    return sorted(files)


def _size(n: int | list[Path]) -> str:
    if isinstance(n, list):
        n = sum(f.stat().st_size for f in n if f.exists())
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _files(c: Check, spec: Any, files: list[Path], folder: Path | None, redownload: str) -> bool:
    """Integrity and size of the weight files (and the folder's configs); False if one is damaged."""
    configs = [folder / n for n in CONFIG_FILES if folder is not None and (folder / n).is_file()]
    for f in configs + files:
        why = damaged(f)
        if why:
            c.fail("weights", "weights", f"damaged: {f} {why}; a truncated or corrupt download: {redownload}")
            return False
    for f in files:
        pickled = unsafe_globals(f)
        if pickled:
            c.fail("weights", "weights", f"unsafe: {f} holds pickled Python objects ({', '.join(pickled[:3])}) that a "
                                         "weights-only load refuses, and cytoreg never unpickles them: use the "
                                         "publisher's safetensors file, or convert this one to safetensors where you "
                                         "trust it")
            return False
    total = sum(f.stat().st_size for f in files)
    where = f"{folder} ({len(files)} file{'s' * (len(files) > 1)}, " if folder else f"{files[0]} ("
    c.add("weights", f"present: {where}{_size(total)})")
    floor = expected_floor(spec)
    if floor and total < floor[0]:
        c.warn("size", f"{_size(total)} of weights is far below what the spec's {floor[1]} needs "
                       f"(at least {_size(floor[0])}): a truncated download, or other weights than the spec "
                       f"describes (a cut download: {redownload})")
    return True


#: the files a transformers processor / image processor is read from (transformers 5 writes a
#: processor's as processor_config.json, an image processor's as preprocessor_config.json; hub repos
#: saved by 4.x hold preprocessor_config.json for both)
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
#: config files whose ``auto_map`` names module files transformers imports (trust_remote_code)
AUTO_MAP_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")


def _auto_map_modules(folder: Path) -> list[str]:
    """The ``.py`` files the folder's ``auto_map`` entries name, and the files those import
    relatively (``from .configuration_x import``), as transformers fetches them. Entries of
    another repo (``org/repo--module.Class``) are not this folder's."""
    import re

    names: list[str] = []
    for cfg_name in AUTO_MAP_FILES:
        try:
            amap = json.loads((folder / cfg_name).read_text(encoding="utf-8")).get("auto_map") or {}
        except (OSError, ValueError, AttributeError):
            continue
        refs = [r for v in (amap.values() if isinstance(amap, dict) else []) for r in (v if isinstance(v, list) else [v])]
        for ref in refs:
            if isinstance(ref, str) and "." in ref and "--" not in ref:
                names.append(ref.rsplit(".", 1)[0].replace(".", "/") + ".py")
    seen: list[str] = []
    while names:
        n = names.pop(0)
        if n in seen:
            continue
        seen.append(n)
        try:
            code = (folder / n).read_text(encoding="utf-8")
        except OSError:
            continue
        names += [f"{m}.py" for m in re.findall(r"^\s*from\s+\.(\w+)\s+import", code, re.MULTILINE)]
    return seen


def _needed_files(spec: Any, folder: Path) -> list[str]:
    """Files the adapter's loader will read that the folder lacks, found without loading anything:
    the processor's config (not for hf_remote_clip: KEEP ships a tokenizer and no processor) and,
    where the spec trusts remote code, every module file ``auto_map`` names."""
    adapter = spec.get("adapter")
    missing = []
    if adapter in HF_ADAPTERS and not (folder / "config.json").is_file():
        missing.append("config.json")
    if adapter in HF_ADAPTERS and adapter != "hf_remote_clip" and not any((folder / n).is_file() for n in PROCESSOR_FILES):
        missing.append(" or ".join(PROCESSOR_FILES))
    if adapter in HF_ADAPTERS and spec.get("trust_remote_code"):
        missing += [n for n in _auto_map_modules(folder) if not (folder / n).is_file()]
    return missing


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
    if adapter not in HF_ADAPTERS:
        return "weights present (nothing more to load without reading them)"
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


def _loadable_file(spec: Any) -> str:
    """One weights file of a hub repo (no config beside it): for timm, the installed timm has the
    architecture the spec names."""
    arch = (spec.get("params") or {}).get("arch")
    if spec.get("adapter") != "timm" or not arch:
        return "weights present (one file; nothing more to load without reading it)"
    import timm

    if not timm.is_model(arch):
        raise ValueError(f"the installed timm {timm.__version__} has no architecture {arch} (params.arch)")
    return f"timm architecture {arch}"


def _key_fit(c: Check, spec: Any, path: Path) -> None:
    """A checkpoint file's keys against the architecture the timm / open_clip adapter builds (on the
    meta device; no tensor read): a file of another model is named here, not at the run's load."""
    from cytoreg.models import keyfit

    p = dict(spec.get("params") or {})
    try:
        if c.adapter == "timm" and p.get("arch"):
            arch, fit = p["arch"], keyfit.timm_fit(p, path, f"model '{c.name}' ({spec.path})")
        elif c.adapter == "open_clip" and p.get("model") and not str(p["model"]).startswith(("hf-hub:", "local-dir:")):
            arch, fit = p["model"], keyfit.open_clip_fit(str(p["model"]), path)
        else:
            return
    except Exception as exc:  # noqa: BLE001 - the library's own words, first line, with the file
        c.fail("weights", "keys", f"no: {path} could not be compared with the architecture: {library_words(exc)}")
        return
    if fit.ok:
        c.add("keys", f"{path.name} fits {arch}")
        return
    get = how_to_get(spec)
    c.fail("weights", "keys", f"{path} is present but not a {arch} state dict: {fit.words()}; check params.arch / "
                              f"params.model / params.model_kwargs in {spec.path}, or that the file is the checkpoint "
                              "meant for this model" + (f" ({get})" if get else ""))


def _deep_hook(c: Check, spec: Any) -> None:
    """An adapter's own deep check (DEEP_HOOKS): its lines beyond the weights, and its verdict."""
    import importlib

    module, fn = DEEP_HOOKS[c.adapter]
    own = Check(c.name, c.adapter, verdict=False)
    try:
        getattr(importlib.import_module(module), fn)(spec, own)
    except Exception as exc:  # noqa: BLE001 - a hook must not end the report
        own.add("loads", f"no: {library_words(exc)}")
    for key, text in own.lines:
        if key != "weights" and (key, text) not in c.lines:
            c.add(key, text)
    if not own.ready:
        last = next((f"{k} {t}" for k, t in reversed(own.lines) if k != "licence"), "its own check failed")
        c.problems.append(("weights", f"model '{c.name}': {last}"))


def _packages(c: Check, adapter: str) -> None:
    import importlib.util

    mods, how = PACKAGES.get(adapter, ((), ""))
    missing = []
    for m in mods:
        try:
            if importlib.util.find_spec(m) is None:
                missing.append(m)
        except (ImportError, ValueError):  # a parent package is missing (google.genai without google)
            missing.append(m)
    if missing:
        c.fail("package", "packages", f"missing: {', '.join(missing)} (the {adapter} adapter imports them)", how)


def _endpoint(c: Check, spec: Any) -> None:
    from cytoreg.models.endpoint import base_url

    adapter, p = spec.get("adapter"), dict(spec.get("params") or {})
    if adapter not in ENDPOINTS:
        c.add("weights", f"served by the {adapter} adapter: no local weights")
        return
    keys, url_env = ENDPOINTS[adapter]
    url = base_url(p, url_env)
    if url is None and "base_url_env" in p:
        var = p["base_url_env"]
        c.fail("key", "endpoint", f"missing: environment variable {var} is not set; this model talks to a server "
                                  f"you run: set {var} to its OpenAI-compatible URL (e.g. http://127.0.0.1:8000/v1)")
        return
    if url is not None:
        c.add("endpoint", url)
        if adapter == "openai":  # a server of your own needs no key
            return
    names = (p["api_key_env"],) if "api_key_env" in p else keys
    have = [n for n in names if os.environ.get(n)]
    if have:
        c.add("key", f"{have[0]} is set (never shown)")
    else:
        fix = "; or point -M base_url=... at a local server" if adapter == "openai" else ""
        c.fail("key", "key", f"missing: environment variable {' or '.join(names)} is not set; export your API "
                             f"key there (never written to disk){fix}")


def check(spec: Any, adapter: Any = None, *, deep: bool = True) -> Check:
    """Packages, weights, key and endpoint of ``spec``; ``adapter`` (an instance) adds its own
    ``check()`` when it overrides it; ``deep`` (``models check``) also loads config and processor
    (no weights); the preflight passes ``deep=False``."""
    name = str(spec.get("adapter"))
    c = Check(spec.name, name)
    _packages(c, name)
    src = _source(spec)
    c.source = src.where if src.kind != "env" else f"${src.where}"
    if src.kind == "api":
        _endpoint(c, spec)
    elif src.kind == "none":
        c.add("weights", src.where)
    elif src.kind == "env":
        c.fail("weights", "weights", f"missing: environment variable {src.where} ({src.origin}) is not set; set "
                                     "it to the checkpoint file", how_to_get(spec))
    elif src.kind == "file":
        _file(c, spec, src, deep)
    else:
        _folder(c, spec, src, deep)
    model = str((spec.get("params") or {}).get("model", ""))
    if name == "conch" and model.endswith(".json") and not _relative_to_spec(spec, model).is_file():
        c.fail("weights", "config", f"missing: the CONCH config {_relative_to_spec(spec, model)} (params.model) "
                                    "does not exist")
    if deep and c.ready and name in DEEP_HOOKS:
        _deep_hook(c, spec)
    if adapter is not None:
        _adapter_extras(c, adapter, src)
    return c


def _file(c: Check, spec: Any, src: Source, deep: bool = True) -> None:
    path = Path(src.where).expanduser()
    get = how_to_get(spec)
    if path.is_file():
        if _files(c, spec, [path], None, f"delete {path} and download it again" + (f" ({get})" if get else "")) \
                and deep:
            _key_fit(c, spec, path)
        return
    rel = "" if path.is_absolute() else f", relative to the current folder {Path.cwd()}"
    what = "is a folder, not a file" if path.is_dir() else "does not exist"
    c.fail("weights", "weights", f"missing: the checkpoint file {path} ({src.origin}{rel}) {what}", get)


def _folder(c: Check, spec: Any, src: Source, deep: bool) -> None:
    if src.kind == "folder":
        folder = Path(src.where).expanduser()
        get = how_to_get(spec)
        redownload = "replace the folder's files with a complete copy"
        if not folder.is_dir():
            c.fail("weights", "weights", f"missing: the folder {folder} ({src.origin}) does not exist", get)
            return
    else:
        get = how_to_get(spec, src.where, src.filename)
        redownload = (f"download it again with hf download {src.where}{' ' + src.filename if src.filename else ''} "
                      "--force-download (a plain hf download keeps the damaged file in the cache)")
        folder = _snapshot(src.where, (spec.get("params") or {}).get("revision"))
        if folder is None or (src.filename and not (folder / src.filename).is_file()):
            offline = "; HF_HUB_OFFLINE is set" if os.environ.get("HF_HUB_OFFLINE") else ""
            what = f"{src.filename} of {src.where}" if src.filename else src.where
            c.fail("weights", "weights", f"missing: {what} ({src.origin}) is not in the Hugging Face cache "
                                         f"{hf_cache_dir()} (models--{src.where.replace('/', '--')}{offline})", get)
            return
    try:
        files = [folder / src.filename] if src.filename else _weights(folder)
    except FileNotFoundError as exc:
        c.fail("weights", "weights", f"incomplete: {folder}: {exc}; {redownload}", get)
        return
    if not files:
        c.fail("weights", "weights", f"missing: {folder} has no weight file (*.safetensors, *.bin, *.pth)", get)
        return
    if not _files(c, spec, files, folder, redownload):
        return
    lacking = [] if src.filename else _needed_files(spec, folder)
    if lacking:
        where = f"the snapshot {folder}" if src.kind == "hub" else f"the folder {folder}"
        fix = (f"hf download {src.where} --force-download" if src.kind == "hub"
               else "replace the folder's files with a complete copy")
        one = len(lacking) == 1
        c.fail("weights", "files", f"{', '.join(lacking)} {'is' if one else 'are'} missing from {where}, and the "
                                   f"{c.adapter} adapter's loader reads {'it' if one else 'them'} (a partial "
                                   f"download?): {fix}")
        return
    if deep:
        try:
            c.add("loads", _loadable_file(spec) if src.filename else _loadable(spec, folder))
        except Exception as exc:  # noqa: BLE001 - the library's own words, first line, with the folder
            c.fail("weights", "loads", f"no: {folder}: {library_words(exc)}")
        else:
            if src.filename:
                _key_fit(c, spec, files[0])
    if spec.get("gated") and src.kind == "hub":
        c.add("licence", f"gated repo; its licence was accepted at {spec.get('gated')} by whoever downloaded it")


def _adapter_extras(c: Check, adapter: Any, src: Source) -> None:
    """An adapter's own ``check()`` (what only it knows: a package, a tokenizer file). What it says
    again about weights the shared checks already found missing (naming the same place) is dropped."""
    from cytoreg.errors import CytoregError
    from cytoreg.models.base import ModelAdapter

    fn = type(adapter).check
    if fn is ModelAdapter.check:
        return
    try:
        found = list(adapter.check())
    except CytoregError as exc:
        found = [str(exc)]
    except Exception as exc:  # noqa: BLE001 - a plugin's check must not hide the others
        found = [f"model '{c.name}': its check() failed: {type(exc).__name__}: {exc}"]
    said = {m for _, m in c.problems}
    for m in found:
        if m in said or (not c.ready and src.where and src.where in m):
            continue
        category = ("key" if any(w in m for w in ("API key", "_KEY", "base_url", "URL")) else
                    "package" if " needs " in m and any(w in m for w in ("Install:", "pip install")) else "weights")
        c.add("adapter", m)
        c.problems.append((category, m))
