"""Anthropic Claude through the Messages API (the ``anthropic`` SDK): the system text goes in the
top-level ``system`` field, images as base64 ``image`` blocks, ``max_tokens`` is always sent (the
API requires it). On 429 / 529 the wait comes from ``retry-after`` or, failing that, from the
``anthropic-ratelimit-*-reset`` time of the exhausted limit. The key is read from the environment only."""
from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from typing import Any

from cytoreg import secrets
from cytoreg.errors import ModelLoadError
from cytoreg.models.base import ChatRequest, Generator, ImagePart, PermanentError, Response, TextPart
from cytoreg.models.endpoint import base_url, endpoint_identity, endpoint_properties
from cytoreg.models.failures import connection_failure, http_failure, scrub
from cytoreg.models.openai_api import _count, _first_line, retry_after

SENDABLE = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
DEFAULT_MAX_TOKENS = 1024
LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def rate_limit_wait(headers: Any, now: datetime | None = None) -> float | None:
    """Seconds to wait: ``retry-after`` when sent, else until the reset of the limit that is at 0."""
    if headers is None:
        return None
    wait = retry_after(headers)
    if wait is not None:
        return wait
    now = now or datetime.now(timezone.utc)
    waits = []
    for limit in LIMITS:
        if headers.get(f"anthropic-ratelimit-{limit}-remaining") == "0":
            reset = headers.get(f"anthropic-ratelimit-{limit}-reset")
            try:
                when = datetime.fromisoformat(reset.replace("Z", "+00:00")) if reset else None
            except ValueError:
                when = None
            if when is not None:
                waits.append(max(0.0, (when - now).total_seconds()))
    return max(waits) if waits else None


def image_block(part: ImagePart) -> dict:
    data, mime = part.payload(SENDABLE)  # original bytes, or PNG (TIFF, CMYK, EXIF-rotated); never undecodable
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": base64.b64encode(data).decode()}}


def parse_message(resp: Any, base_url: str | None = None) -> Response:
    """A Messages API reply → Response; a reply of another shape (an HTML page, no content list)
    is a PermanentError saying what came back."""
    blocks = getattr(resp, "content", None)
    if isinstance(resp, (str, bytes)) or not isinstance(blocks, list):
        body = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp
        raise PermanentError(f"the server's reply is not a Messages API message (got {type(resp).__name__}: "
                             f"{_first_line(body, 120)!r}); check that {base_url or 'the endpoint'} speaks the "
                             "Messages API")
    text = "".join(b.text for b in blocks if getattr(b, "type", None) == "text" and isinstance(getattr(b, "text", None), str))
    stop = getattr(resp, "stop_reason", None)
    if not text and stop == "refusal":
        raise PermanentError("Claude refused to answer (stop_reason: refusal)")
    u = getattr(resp, "usage", None)
    n_in, n_out = _count(getattr(u, "input_tokens", 0)), _count(getattr(u, "output_tokens", 0))
    usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
    for extra in ("cache_read_input_tokens", "cache_creation_input_tokens"):
        if _count(getattr(u, extra, 0)):
            usage[extra] = _count(getattr(u, extra, 0))
    model = getattr(resp, "model", None)
    return Response(text=text, usage=usage, model_version=model if isinstance(model, str) else None)


class AnthropicChat(Generator):
    mode = "concurrent"
    sendable_mimes = SENDABLE
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            **endpoint_properties("Claude model id, e.g. claude-sonnet-4-6", "ANTHROPIC_API_KEY",
                                  "another endpoint speaking the Messages API"),
            "sampling": {"type": "boolean", "description": "false for models that reject temperature / top_p / "
                         "top_k (Claude Opus 4.7): they are then not sent (nor with thinking)"},
            "thinking": {"type": "object", "description": "sent as is, e.g. {type: enabled, budget_tokens: 2048} "
                         "or {type: adaptive}"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self._client = None
        self._key: str | None = None
        self.base_url = base_url(self.params)

    def weights_identity(self) -> str:
        return endpoint_identity(self.params["model"], self.base_url, "api.anthropic.com")

    @property
    def endpoint(self) -> str:
        """Where requests go, for messages (never the key)."""
        return self.base_url or "https://api.anthropic.com"

    def load(self) -> None:
        try:
            import anthropic
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs the anthropic SDK: pip install 'cytoreg[api]'") from exc
        key_env = self.params.get("api_key_env", "ANTHROPIC_API_KEY")
        secrets.register_env(key_env)  # masked wherever it could be echoed back
        key = os.environ.get(key_env)
        if not key:
            raise ModelLoadError(f"model '{self.name}': environment variable {key_env} is not set. Export your "
                                 "Anthropic API key there (https://console.anthropic.com/settings/keys); it is never "
                                 "written to disk.")
        timeout = float((self.spec.get("execution") or {}).get("timeout", 120))
        # retries are ours (backoff, rate-limit headers, stats): the SDK must not add its own
        self._key = key
        self._client = anthropic.Anthropic(api_key=key, base_url=self.base_url, max_retries=0, timeout=timeout)

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        """The Messages API request body (without the model's transport options)."""
        system: list[str] = []
        messages = []
        for m in request.messages:
            if m.role == "system":
                system += [p.text for p in m.parts if isinstance(p, TextPart)]
                continue
            blocks = [{"type": "text", "text": p.text} if isinstance(p, TextPart) else image_block(p) for p in m.parts]
            messages.append({"role": m.role, "content": blocks})
        gen = request.generation
        body: dict[str, Any] = {"model": self.params["model"], "messages": messages,
                                "max_tokens": gen.get("max_tokens", DEFAULT_MAX_TOKENS)}
        if system:
            body["system"] = "".join(system)
        if self.params.get("sampling", True) and "thinking" not in self.params:  # thinking takes no temperature
            for key in ("temperature", "top_p", "top_k"):
                if key in gen:
                    body[key] = gen[key]
        if "thinking" in self.params:
            body["thinking"] = self.params["thinking"]
        return body  # no seed: the Messages API has none

    def generate(self, request: ChatRequest) -> Response:
        import anthropic

        if self._client is None:
            self.load()
        try:
            body = self.payload(request)
            # recent SDKs dropped the sampling arguments from create() (newer models reject them);
            # models that take them still get them, as plain body fields
            sampling = {k: body.pop(k) for k in ("temperature", "top_p", "top_k") if k in body}
            resp = self._client.messages.create(**body, **({"extra_body": sampling} if sampling else {}))
        except (ValueError, anthropic.APIResponseValidationError) as exc:  # a body that is not JSON
            raise PermanentError(f"the server's reply is not valid JSON ({_first_line(exc)}); check that "
                                 f"{self.base_url or 'the endpoint'} speaks the Messages API") from exc
        except anthropic.APIStatusError as exc:  # 529 (overloaded) is retried like any 5xx
            raise http_failure(exc.status_code, scrub(str(exc.message), self._key), model=self.params["model"],
                               endpoint=self.endpoint, key_env=self.params.get("api_key_env", "ANTHROPIC_API_KEY"),
                               retry_after=rate_limit_wait(exc.response.headers)) from exc
        except (anthropic.APITimeoutError, anthropic.APIConnectionError) as exc:
            raise connection_failure(exc, endpoint=self.endpoint) from exc
        return parse_message(resp, self.base_url)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
