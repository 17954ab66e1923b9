"""What the API adapters (OpenAI-compatible, Gemini, Anthropic) share about where requests go:
the spec fields that name the endpoint and the key, and the cache identity of an endpoint (the
provider's host; for a server of your own only ``local``, so a new port re-sends nothing)."""
from __future__ import annotations

import os
from typing import Any

from cytoreg.models.failures import remote_host


def endpoint_properties(model: str, key_default: str, base_url: str) -> dict[str, Any]:
    """JSON-schema properties ``model``, ``base_url``, ``base_url_env`` and ``api_key_env``."""
    return {
        "model": {"type": "string", "description": model},
        "base_url": {"type": "string", "description": base_url},
        "base_url_env": {"type": "string", "description": "environment variable holding that endpoint"},
        "api_key_env": {"type": "string", "description": f"environment variable holding the key (default {key_default})"},
    }


def base_url(params: dict[str, Any], default_env: str | None = None) -> str | None:
    """``params.base_url``, else the variable ``params.base_url_env`` (or ``default_env``) names."""
    env = params.get("base_url_env", default_env)
    return params.get("base_url") or (os.environ.get(env) if env else None) or None


def endpoint_identity(model: str, url: str | None, provider_host: str) -> str:
    """The model name as sent, and the provider's host unless it is a server of your own
    (loopback or private address): restarting vLLM on another port re-sends nothing."""
    return f"{model}@{remote_host(url) or ('local' if url else provider_host)}"
