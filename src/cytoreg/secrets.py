"""Secret hygiene: values that must never reach a terminal, a log or a file.

Secrets are the values of
- environment variables whose name ends in ``_KEY``, ``_TOKEN``, ``_SECRET``, ``_PASSWORD`` or
  ``_CREDENTIALS`` (``OPENAI_API_KEY``, ``HF_TOKEN``...),
- environment variables a spec names as ``params.api_key_env``,
- environment variables a spec expands with ``${VAR}``, unless the name says it holds a location
  (``*_ROOT``, ``*_DIR``, ``*_PATH``, ``*_HOME``, ``*_URL``, ``*_DATA``, ``*_CHECKPOINT``,
  ``*_CKPT``...; ``$CYTOREG_DATA``) or
  the value is an existing path: error messages must show where they looked,

each at least :data:`MIN_LENGTH` characters long (shorter values are not credentials, and
replacing them would garble unrelated text). :func:`redact` replaces every occurrence with
``***``; the CLI's output, ``results.json``, ``samples.jsonl``, the response cache and the HTML
report pass through it, so a gateway that echoes the key in an error body cannot put it on disk.
"""
from __future__ import annotations

import json
import os
import re
import threading
from typing import Any

MASK = "***"
MIN_LENGTH = 8
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET|_PASSWORD|_CREDENTIALS|^API_KEY|^TOKEN)$", re.IGNORECASE)
LOCATION_NAME = re.compile(r"(_ROOT|_DIR|_PATH|_HOME|_URL|_FOLDER|_DATA|_CACHE|_FILE|_CHECKPOINT|_CKPT|_WEIGHTS)$",
                           re.IGNORECASE)

_lock = threading.Lock()
_named: set[str] = set()  # variable names specs referred to


def register_env(name: str, *, from_expansion: bool = False) -> None:
    """Treat the value of environment variable ``name`` as a secret (specs call this for
    ``api_key_env`` and for every ``${VAR}`` they expand)."""
    if from_expansion and LOCATION_NAME.search(name):
        return
    with _lock:
        _named.add(name)


def secret_values() -> list[str]:
    """The current secret values, longest first (so a key containing another is masked whole)."""
    with _lock:
        named = set(_named)
    values = {v for k, v in os.environ.items() if len(v) >= MIN_LENGTH and (
        SECRET_NAME.search(k) or (k in named and not _is_path(v)))}
    return sorted(values, key=len, reverse=True)


def _is_path(value: str) -> bool:
    try:
        return os.path.exists(value)
    except (OSError, ValueError):
        return False


def _variants(value: str) -> list[str]:
    """The value as written in text and as escaped inside a JSON string."""
    out = [value]
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    if escaped != value:
        out.append(escaped)
    ascii_escaped = json.dumps(value)[1:-1]
    if ascii_escaped not in out:
        out.append(ascii_escaped)
    return out


def redact(text: str, values: list[str] | None = None) -> str:
    """``text`` with every secret value replaced by ``***``."""
    if not text:
        return text
    for v in values if values is not None else secret_values():
        for form in _variants(v):
            if form in text:
                text = text.replace(form, MASK)
    return text


def redact_obj(obj: Any, values: list[str] | None = None) -> Any:
    """A copy of a JSON-like structure with secrets masked in every string (keys included)."""
    values = secret_values() if values is None else values
    if not values:
        return obj
    if isinstance(obj, str):
        return redact(obj, values)
    if isinstance(obj, dict):
        return {redact(k, values) if isinstance(k, str) else k: redact_obj(v, values) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v, values) for v in obj]
    return obj


def contains_secret(text: str) -> bool:
    return any(form in text for v in secret_values() for form in _variants(v))
