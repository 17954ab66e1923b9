"""Checkpoints that ship their own model code (``config.json`` ``auto_map``). Without
``trust_remote_code`` transformers does not refuse them when their ``model_type`` is one it knows:
it quietly builds its own class from the config instead (Hibou's ``model_type: dinov2`` becomes a
plain ``Dinov2Model`` that drops the register tokens), so the adapter refuses first and names the
spec field. Reads ``config.json`` only (through transformers' hub resolution); never runs code."""
from __future__ import annotations

from typing import Any

from cytoreg.errors import ModelLoadError


def auto_map(model_id: str, revision: str | None = None) -> dict[str, str]:
    """The checkpoint's ``auto_map`` ({} when it has none, or when config.json cannot be read yet:
    the load that follows says why)."""
    from transformers import PretrainedConfig

    try:
        cfg, _ = PretrainedConfig.get_config_dict(model_id, **({"revision": revision} if revision else {}))
    except (OSError, ValueError):
        return {}
    found = cfg.get("auto_map") or {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def refuse_untrusted(spec: Any, model_id: str, revision: str | None = None) -> None:
    """Raise when ``model_id`` ships model code and the spec does not set ``trust_remote_code``."""
    if spec.get("trust_remote_code"):
        return
    found = auto_map(model_id, revision)
    if not found:
        return
    files = sorted({v.split(".")[0] + ".py" for v in found.values() if "." in v})
    which = ", ".join(f"{k} -> {v}" for k, v in sorted(found.items()))
    raise ModelLoadError(
        f"model '{spec.name}': {model_id} ships its own model code (config.json auto_map: {which}), which "
        f"runs only with trust_remote_code; without it transformers would build its built-in class from the "
        f"config and the features or answers would not be the model's. Read {', '.join(files)} in that repository, then "
        f"set 'trust_remote_code: true' in {spec.path or 'the model spec'}")
