"""CLIP-style dual encoders whose Hugging Face checkpoint carries its own model code and exposes
``encode_image(pixels)`` / ``encode_text(tokenized)`` (KEEP, ``Astaxanthin/KEEP``): no processor is
published, so images go through the model card's torchvision pipeline (the spec's ``preprocess``)
and texts through the checkpoint's ``AutoTokenizer`` with the card's padding and length.

The remote code is run only when the spec sets ``trust_remote_code: true``. Two things such code,
written for transformers 4 and an older timm, does that cytoreg contains here rather than lets
leak: a model ``__init__`` that never calls ``post_init()`` (transformers 5 then fails with "no
attribute all_tied_weights_keys"; the loaded class gets it called), and module-level replacement
of timm classes (KEEP replaces ``timm.models.vision_transformer.LayerScale``), which would
silently rename the parameters of every timm model built later in the same run: the replacements
are applied only while this model is built (again on a reload, when the module is not re-run),
taught to accept the ``device``/``dtype`` keywords today's timm passes, and undone afterwards.
A weight the checkpoint lacks or does not use is an error, never a silent random init.
transformers, timm and torch are imported only in :meth:`load`."""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterator

import numpy as np

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import Embedder
from cytoreg.models.timm_features import PREPROCESS_SCHEMA, build_transform
from cytoreg.models.weights import hub_identity, hub_missing, hub_properties, pick_device, precision_dtype

#: timm module globals a model's remote code replaced, by model id (re-applied on a reload, when the
#: already-imported remote module does not run again)
_REMOTE_PATCHES: dict[Any, dict[str, Any]] = {}
#: the timm modules whose globals remote code is known to replace
WATCHED_MODULES = ("timm.models.vision_transformer",)


def _accepts_device_kwargs(cls: type) -> type:
    """A replaced timm layer class whose ``__init__`` predates timm's ``device``/``dtype``
    keywords, as a subclass that drops them (timm ≥ 1.0.20 passes them to every layer)."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return cls
    if "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return cls

    def __init__(self, *args, device=None, dtype=None, **kwargs):
        cls.__init__(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__})


@contextlib.contextmanager
def confined_globals(key: Any) -> Iterator[dict[str, dict]]:
    """Run a remote model's import and construction with the timm globals it replaces in place,
    and put timm's own back afterwards; ``key`` (the model id) remembers the replacements. Yields
    timm's globals as they were (for :func:`_fix_replaced_layers`)."""
    import importlib

    modules = [importlib.import_module(m) for m in WATCHED_MODULES]
    before = {m.__name__: dict(vars(m)) for m in modules}
    for m in modules:
        for name, value in _REMOTE_PATCHES.get(key, {}).get(m.__name__, {}).items():
            setattr(m, name, value)
    try:
        yield before
    finally:
        for m in modules:
            old = before[m.__name__]
            changed = {k: v for k, v in vars(m).items() if k not in old or old[k] is not v}
            if changed:
                _REMOTE_PATCHES.setdefault(key, {})[m.__name__] = changed
            for k in changed:
                if k in old:
                    setattr(m, k, old[k])
                else:
                    delattr(m, k)


def _fix_replaced_layers(before: dict[str, dict]) -> None:
    """After the remote module ran: the timm classes it replaced accept device/dtype."""
    import importlib

    for name in WATCHED_MODULES:
        m = importlib.import_module(name)
        for k, v in list(vars(m).items()):
            if isinstance(v, type) and before[name].get(k) is not v and isinstance(before[name].get(k), type):
                setattr(m, k, _accepts_device_kwargs(v))


def _with_post_init(cls: type) -> type:
    """The remote model class, calling ``post_init()`` when its own ``__init__`` did not
    (transformers 5 needs it: it sets the tied-weights bookkeeping ``from_pretrained`` reads)."""
    def __init__(self, config, *args, **kwargs):
        cls.__init__(self, config, *args, **kwargs)
        if not hasattr(self, "all_tied_weights_keys"):
            self.post_init()

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__})


class HFRemoteCLIP(Embedder):
    supports_remote_code = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model", "preprocess"],
        "properties": {
            **hub_properties("Astaxanthin/KEEP"),
            "preprocess": PREPROCESS_SCHEMA,
            "text_padding": {"enum": ["longest", "max_length"], "description": "the card's tokenizer padding"},
            "max_length": {"type": "integer", "minimum": 1, "description": "tokens per text (truncated)"},
            "precision": {"enum": ["fp32", "fp16", "bf16"], "description": "on GPU; CPU always runs fp32"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self.model_id: str = self.params["model"]
        self._model = None
        self._transform = None  # torchvision, built on first use (in each DataLoader worker)

    def weights_identity(self) -> str:
        """The weights and, for a local folder, its model code: the code computes the embeddings too."""
        from pathlib import Path

        from cytoreg.models.weights import file_identity

        ident = hub_identity(self.model_id, self.params.get("revision"))
        folder = Path(self.model_id).expanduser()
        if folder.is_dir():
            ident += "|code:" + ",".join(f"{f.name}={file_identity(f)}" for f in sorted(folder.glob("*.py")))
        return ident

    def _refuse_without_trust(self) -> str | None:
        if self.spec.get("trust_remote_code") is True:
            return None
        return (f"model '{self.name}': {self.model_id} runs its own model code (encode_image / encode_text), which "
                f"cytoreg only runs when the spec asks for it: set trust_remote_code: true in {self.spec.path} "
                "after reading the repository's modeling file")

    def check(self) -> list[str]:
        import importlib.util

        from cytoreg.models.weights import hub_check

        refused = self._refuse_without_trust()
        if refused:
            return [refused]
        missing = [p for p in ("transformers", "timm", "torch", "torchvision") if importlib.util.find_spec(p) is None]
        if missing:
            return [f"model '{self.name}' needs {', '.join(missing)}: pip install 'cytoreg[hf,clip]'"]
        return hub_check(self.name, self.model_id, self.params.get("download_hint"), "config.json")

    def load(self) -> None:
        refused = self._refuse_without_trust()
        if refused:
            raise ModelLoadError(refused)
        try:
            import torch
            from transformers import AutoConfig, AutoTokenizer
            from transformers.dynamic_module_utils import get_class_from_dynamic_module
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs transformers, timm and torch: "
                                 f"pip install 'cytoreg[hf,clip]' ({exc})") from exc
        hf_logging.disable_progress_bar()
        device = pick_device(self.device)
        dtype = precision_dtype(torch, self.params.get("precision"), device)
        kwargs: dict = {"trust_remote_code": True}
        if "revision" in self.params:
            kwargs["revision"] = self.params["revision"]
        from cytoreg.models.check import how_to_get

        hint = how_to_get(self.spec, self.model_id)  # the one wording (licence, login, download)
        with confined_globals(self.model_id) as before:  # the config class's module is the model's
            try:
                config = AutoConfig.from_pretrained(self.model_id, **kwargs)
                tokenizer = AutoTokenizer.from_pretrained(self.model_id, **kwargs)
            except ImportError as exc:  # the modeling file imports a package that is not installed
                raise ModelLoadError(f"model '{self.name}': the model code shipped with {self.model_id} needs a "
                                     f"package that is not installed ({str(exc).strip().splitlines()[0]}); pip "
                                     "install it, after reading the modeling file") from exc
            except (OSError, ValueError, KeyError) as exc:
                raise hub_missing(self.name, self.model_id, " (config and tokenizer)", hint, exc) from exc
            except Exception as exc:  # the module-level code of the modeling file failed
                raise self._remote_failed(exc) from exc
            ref = (getattr(config, "auto_map", None) or {}).get("AutoModel")
            if not ref:
                raise ModelLoadError(f"model '{self.name}': {self.model_id}/config.json has no auto_map.AutoModel, "
                                     "so there is no remote model class to run; the hf_remote_clip adapter is for "
                                     "checkpoints that ship their own encode_image / encode_text code")
            cls = get_class_from_dynamic_module(ref, self.model_id, **kwargs)
            _fix_replaced_layers(before)
            try:
                model, info = _with_post_init(cls).from_pretrained(self.model_id, config=config, dtype=dtype,
                                                                   output_loading_info=True, **kwargs)
            except (OSError, ValueError) as exc:
                raise hub_missing(self.name, self.model_id, " (weights)", hint, exc) from exc
            except Exception as exc:  # the checkpoint's own code failed: not cytoreg's, say whose
                raise self._remote_failed(exc) from exc
        bad = {k: list(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if any(bad.values()):
            raise ModelLoadError(
                f"model '{self.name}': the weights of {self.model_id} do not fit its model code ("
                + "; ".join(f"{k.replace('_', ' ')}: {v[:4]}{'…' if len(v) > 4 else ''}" for k, v in bad.items() if v)
                + "); nothing would be evaluated with randomly initialised layers. Check the revision, or that the "
                "installed timm / transformers build the layers the checkpoint was saved from")
        for method in ("encode_image", "encode_text"):
            if not callable(getattr(model, method, None)):
                raise ModelLoadError(f"model '{self.name}': {self.model_id} loads as {type(model).__name__}, which "
                                     f"has no {method}; the hf_remote_clip adapter needs both encode_image and "
                                     "encode_text")
        self._model = model.to(device).eval()
        self._tokenizer, self._torch, self._device, self._dtype = tokenizer, torch, device, dtype

    def _remote_failed(self, exc: Exception) -> ModelLoadError:
        import timm
        import transformers

        first = str(exc).splitlines()[0] if str(exc) else ""
        return ModelLoadError(
            f"model '{self.name}': the model code shipped with {self.model_id} failed while loading the model "
            f"({type(exc).__name__}: {first}). It was written for other library versions than the installed "
            f"transformers {transformers.__version__} / timm {timm.__version__}: read its modeling file, pin "
            f"params.revision to a revision that works, or report it to the model's authors")

    def _ensure(self) -> None:
        if self._model is None:
            self.load()

    def preprocess(self, image: Any) -> Any:
        if self._transform is None:
            self._transform = build_transform(self.params["preprocess"])
        return self._transform(image.convert("RGB"))

    def encode_batch(self, batch: Any) -> np.ndarray:
        self._ensure()
        torch = self._torch
        with torch.inference_mode():
            f = self._model.encode_image(batch.to(self._device, dtype=self._dtype))
            f = torch.nn.functional.normalize(f.float(), dim=-1)
        return f.cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self._ensure()
        torch = self._torch
        kw: dict = {"padding": self.params.get("text_padding", "longest"), "truncation": True}
        if "max_length" in self.params:
            kw["max_length"] = int(self.params["max_length"])
        tok = self._tokenizer(list(texts), return_tensors="pt", **kw).to(self._device)
        with torch.inference_mode():
            f = torch.nn.functional.normalize(self._model.encode_text(tok).float(), dim=-1)
        return f.cpu().numpy()

    def logit_scale(self) -> float:
        self._ensure()
        scale = getattr(self._model, "logit_scale", None)
        if scale is None:
            raise ModelLoadError(f"model '{self.name}': {type(self._model).__name__} has no logit_scale, so zero-shot "
                                 "probabilities cannot follow the model's own temperature")
        return float(scale.float().exp().item())

    def close(self) -> None:
        self._model = None
