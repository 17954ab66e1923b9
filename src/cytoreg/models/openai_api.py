"""OpenAI chat completions, and any OpenAI-compatible server through ``base_url``
(vLLM, llama.cpp server, ollama). The API key is read from the environment only."""
from __future__ import annotations

import base64
import os
from typing import Any

from cytoreg import secrets
from cytoreg.errors import ModelLoadError
from cytoreg.models.base import ChatRequest, Generator, ImagePart, PermanentError, Response, TextPart
from cytoreg.models.endpoint import base_url, endpoint_identity, endpoint_properties
from cytoreg.models.failures import connection_failure, http_failure, scrub

SENDABLE = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})


def retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            from email.utils import parsedate_to_datetime
            import time

            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


def image_content(part: ImagePart, detail: str) -> dict:
    data, mime = part.payload(SENDABLE)  # original bytes, or PNG (TIFF, CMYK, EXIF-rotated); never undecodable
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return {"type": "image_url", "image_url": {"url": url, "detail": detail}}


def _first_line(x: Any, n: int = 200) -> str:
    text = str(x).strip().splitlines()[0] if str(x).strip() else "empty"
    return text if len(text) <= n else text[: n - 1] + "…"


def _count(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def parse_completion(resp: Any, base_url: str | None = None) -> Response:
    """A chat completion → Response; a reply of another shape (an HTML page, a list, no
    choices, no message, no text) is a PermanentError saying what came back."""
    where = base_url or "the endpoint"
    if isinstance(resp, (str, bytes)) or not hasattr(resp, "choices"):
        body = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp
        raise PermanentError(f"the server's reply is not a chat completion (got {type(resp).__name__}: "
                             f"{_first_line(body, 120)!r}); check that {where} is an OpenAI-compatible /v1 endpoint")
    choices = resp.choices
    if not isinstance(choices, list) or not choices:
        raise PermanentError("the server's reply has no choices (an empty answer list); retry later, or check "
                             f"the model id and {where}")
    choice = choices[0]
    message = getattr(choice, "message", None)
    finish = getattr(choice, "finish_reason", None)
    if message is None:
        raise PermanentError(f"the server's reply has a choice without a message (finish_reason {finish!r})")
    content = getattr(message, "content", None)
    if isinstance(content, list):  # some servers send content parts
        content = "".join(p.get("text", "") if isinstance(p, dict) else str(getattr(p, "text", "") or "")
                          for p in content)
    if content is None:
        refusal = getattr(message, "refusal", None)
        if refusal:
            raise PermanentError(f"the model refused: {_first_line(refusal)}")
        raise PermanentError(f"the server's reply has no text (content null, finish_reason {finish!r})")
    if not isinstance(content, str):
        raise PermanentError(f"the server's reply has content of type {type(content).__name__}, not text")
    usage = {}
    u = getattr(resp, "usage", None)
    if u is not None:
        usage = {"prompt_tokens": _count(getattr(u, "prompt_tokens", 0)),
                 "completion_tokens": _count(getattr(u, "completion_tokens", 0)),
                 "total_tokens": _count(getattr(u, "total_tokens", 0))}
        details = getattr(u, "completion_tokens_details", None)
        if details is not None and isinstance(getattr(details, "reasoning_tokens", None), int):
            usage["reasoning_tokens"] = details.reasoning_tokens  # part of completion_tokens, billed as output
    model = getattr(resp, "model", None)
    return Response(text=content, usage=usage, model_version=model if isinstance(model, str) else None)


class OpenAIChat(Generator):
    mode = "concurrent"
    sendable_mimes = SENDABLE
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            **endpoint_properties("model id sent to the API (pin a dated snapshot)", "OPENAI_API_KEY",
                                  "OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (or OPENAI_BASE_URL)"),
            "image_detail": {"enum": ["low", "high", "auto"]},
            "extra_body": {"type": "object"},
            "reasoning": {"type": "boolean", "description": "a reasoning model (o-series, gpt-5): sends "
                          "max_completion_tokens, never temperature / top_p (the API rejects them)"},
            "reasoning_effort": {"enum": ["minimal", "low", "medium", "high"]},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self._client = None
        self._key: str | None = None
        self.base_url = base_url(self.params, "OPENAI_BASE_URL")

    @property
    def endpoint(self) -> str:
        return self.base_url or "https://api.openai.com/v1"

    def weights_identity(self) -> str:
        return endpoint_identity(self.params["model"], self.base_url, "api.openai.com")

    def load(self) -> None:
        try:
            import openai
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs the openai SDK: pip install 'cytoreg[api]'") from exc
        if self.base_url is None and "base_url_env" in self.params:
            raise ModelLoadError(
                f"model '{self.name}' talks to a server you run: set {self.params['base_url_env']} to its "
                f"OpenAI-compatible URL (e.g. http://127.0.0.1:8000/v1). {self.spec.get('description', '')} "
                f"(spec {self.spec.path})")
        key_env = self.key_env
        secrets.register_env(key_env)  # masked wherever it could be echoed back
        key = os.environ.get(key_env)
        if not key:
            if self.base_url is None:
                raise ModelLoadError(f"model '{self.name}': environment variable {key_env} is not set. Export your "
                                     "API key there (it is never written to disk), or set params.base_url to a "
                                     "local OpenAI-compatible server.")
            key = "not-needed"  # local servers ignore the key but the SDK wants one
        self._key = key
        timeout = float((self.spec.get("execution") or {}).get("timeout", 120))
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=timeout)

    @property
    def key_env(self) -> str:
        return self.params.get("api_key_env", "OPENAI_API_KEY")

    def messages(self, request: ChatRequest) -> list[dict]:
        detail = self.params.get("image_detail", "auto")
        out = []
        for m in request.messages:
            parts = [{"type": "text", "text": p.text} if isinstance(p, TextPart) else image_content(p, detail)
                     for p in m.parts]
            if m.role == "system":
                out.append({"role": "system", "content": "".join(p["text"] for p in parts if p["type"] == "text")})
            else:
                out.append({"role": m.role, "content": parts})
        return out

    def generate(self, request: ChatRequest) -> Response:
        import openai

        if self._client is None:
            self.load()
        gen = request.generation
        kwargs: dict[str, Any] = {"model": self.params["model"], "messages": self.messages(request)}
        reasoning = self.params.get("reasoning", False)
        pairs = ((("max_tokens", "max_completion_tokens"), ("seed", "seed")) if reasoning else
                 (("temperature", "temperature"), ("max_tokens", "max_tokens"), ("top_p", "top_p"), ("seed", "seed")))
        for ours, theirs in pairs:
            if ours in gen:
                kwargs[theirs] = gen[ours]
        if "reasoning_effort" in self.params:
            kwargs["reasoning_effort"] = self.params["reasoning_effort"]
        extra = dict(self.params.get("extra_body") or {})
        if "top_k" in gen:
            extra["top_k"] = gen["top_k"]  # not an OpenAI parameter; vLLM and llama.cpp take it
        if extra:
            kwargs["extra_body"] = extra
        try:
            resp = self._client.chat.completions.create(**kwargs)
        except (ValueError, openai.APIResponseValidationError) as exc:  # a body that is not JSON
            raise PermanentError(f"the server's reply is not valid JSON ({_first_line(exc)}); check that "
                                 f"{self.base_url or 'the endpoint'} is an OpenAI-compatible /v1 endpoint") from exc
        except openai.APIStatusError as exc:
            code = exc.code if isinstance(getattr(exc, "code", None), str) else None
            raise http_failure(exc.status_code, scrub(str(exc.message), self._key), model=self.params["model"],
                               endpoint=self.endpoint, key_env=self.key_env,
                               retry_after=retry_after(exc.response.headers), code=code) from exc
        except openai.APITimeoutError as exc:
            raise connection_failure(exc, endpoint=self.endpoint) from exc
        except openai.APIConnectionError as exc:
            raise connection_failure(exc, endpoint=self.endpoint) from exc
        return parse_completion(resp, self.base_url)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
