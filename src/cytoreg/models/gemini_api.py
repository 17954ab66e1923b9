"""Google Gemini through the google-genai SDK, with the same message model as the OpenAI adapter:
system text → ``system_instruction``, user/assistant turns → ``user``/``model`` contents with
inline image bytes. The API key is read from the environment only; ``base_url`` points the SDK
at another endpoint (a proxy, or the test server)."""
from __future__ import annotations

import os
from typing import Any

from cytoreg import secrets
from cytoreg.errors import ModelLoadError
from cytoreg.models.base import ChatRequest, Generator, ImagePart, PermanentError, Response, TextPart
from cytoreg.models.endpoint import base_url, endpoint_identity, endpoint_properties
from cytoreg.models.failures import connection_failure, http_failure, scrub
from cytoreg.models.openai_api import _first_line, retry_after

#: image types Gemini accepts inline; anything else (TIFF) is sent as PNG
SENDABLE = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
ROLES = {"user": "user", "assistant": "model"}


class GeminiChat(Generator):
    mode = "concurrent"
    sendable_mimes = SENDABLE
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            **endpoint_properties("Gemini model id, e.g. gemini-2.0-flash-001 (pin a version)",
                                  "GEMINI_API_KEY, then GOOGLE_API_KEY", "another endpoint speaking the Gemini API"),
            "api_version": {"type": "string", "description": "API version path segment, e.g. v1beta"},
            "thinking_budget": {"type": "integer", "minimum": -1, "description": "Gemini 2.5 thinking tokens "
                                "(ThinkingConfig.thinking_budget): 0 off (Flash), -1 dynamic"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self._client = None
        self.base_url = base_url(self.params)
        self._secret: str | None = None

    @property
    def endpoint(self) -> str:
        return self.base_url or "https://generativelanguage.googleapis.com"

    @property
    def key_env(self) -> str:
        return self.params.get("api_key_env") or "GEMINI_API_KEY"

    def weights_identity(self) -> str:
        return endpoint_identity(self.params["model"], self.base_url, "generativelanguage.googleapis.com")

    def _key(self) -> str:
        names = [self.params["api_key_env"]] if "api_key_env" in self.params else ["GEMINI_API_KEY", "GOOGLE_API_KEY"]
        for name in names:
            secrets.register_env(name)  # masked wherever it could be echoed back
            if os.environ.get(name):
                return os.environ[name]
        raise ModelLoadError(f"model '{self.name}': environment variable {' or '.join(names)} is not set. Export "
                             "your Gemini API key there (https://aistudio.google.com/apikey); it is never written "
                             "to disk.")

    def load(self) -> None:
        try:
            from google import genai
            from google.genai import types
        except ImportError as exc:
            raise ModelLoadError(f"model '{self.name}' needs the google-genai SDK: pip install 'cytoreg[api]'") from exc
        key = self._secret = self._key()
        timeout_s = float((self.spec.get("execution") or {}).get("timeout", 120))
        options: dict[str, Any] = {"timeout": int(timeout_s * 1000),
                                   # retries are ours (backoff, Retry-After, stats): the SDK must not add its own
                                   "retry_options": types.HttpRetryOptions(attempts=1)}
        if self.base_url:
            options["base_url"] = self.base_url
        # v1beta is the Gemini API's documented version (system_instruction, seed); pinned so a
        # custom base_url gets the same path as the default endpoint
        options["api_version"] = self.params.get("api_version", "v1beta")
        self._client = genai.Client(api_key=key, http_options=types.HttpOptions(**options))

    def contents(self, request: ChatRequest) -> tuple[str | None, list]:
        """(system instruction, contents) in the SDK's types."""
        from google.genai import types

        system: list[str] = []
        contents = []
        for m in request.messages:
            if m.role == "system":
                system += [p.text for p in m.parts if isinstance(p, TextPart)]
                continue
            parts = []
            for p in m.parts:
                if isinstance(p, TextPart):
                    parts.append(types.Part.from_text(text=p.text))
                else:
                    parts.append(self._image(p, types))
            contents.append(types.Content(role=ROLES[m.role], parts=parts))
        return ("".join(system) or None), contents

    @staticmethod
    def _image(part: ImagePart, types) -> Any:
        data, mime = part.payload(SENDABLE)  # original bytes, or PNG; never an undecodable file
        return types.Part.from_bytes(data=data, mime_type=mime)

    def config(self, request: ChatRequest, system: str | None) -> Any:
        from google.genai import types

        gen = request.generation
        kwargs: dict[str, Any] = {}
        for ours, theirs in (("temperature", "temperature"), ("max_tokens", "max_output_tokens"),
                             ("top_p", "top_p"), ("top_k", "top_k"), ("seed", "seed")):
            if ours in gen:
                kwargs[theirs] = gen[ours]
        if system:
            kwargs["system_instruction"] = system
        if "thinking_budget" in self.params:
            kwargs["thinking_config"] = types.ThinkingConfig(thinking_budget=self.params["thinking_budget"])
        return types.GenerateContentConfig(**kwargs)

    def generate(self, request: ChatRequest) -> Response:
        from google.genai import errors

        if self._client is None:
            self.load()
        system, contents = self.contents(request)
        try:
            resp = self._client.models.generate_content(model=self.params["model"], contents=contents,
                                                        config=self.config(request, system))
        except errors.APIError as exc:
            status = int(exc.code or 0)
            headers = getattr(getattr(exc, "response", None), "headers", None)
            raise http_failure(status, scrub(str(exc.message), self._secret), model=self.params["model"],
                               endpoint=self.endpoint, key_env=self.key_env, retry_after=retry_after(headers),
                               code=str(getattr(exc, "status", "") or "")) from exc
        except Exception as exc:  # httpx timeouts / connection errors surface as their own types
            name = type(exc).__name__
            if any(w in name for w in ("Timeout", "Connect", "Network", "RemoteProtocol")):
                raise connection_failure(exc, endpoint=self.endpoint) from exc
            if isinstance(exc, (ValueError, TypeError, KeyError)):  # JSONDecodeError, pydantic ValidationError
                where = self.base_url or "the Gemini endpoint"
                raise PermanentError(f"the server's reply is not a Gemini response ({name}: {_first_line(exc)}); "
                                     f"check that {where} speaks the Gemini API") from exc
            raise
        feedback = getattr(resp, "prompt_feedback", None)
        if feedback is not None and getattr(feedback, "block_reason", None):
            raise PermanentError(f"prompt blocked by Gemini: {feedback.block_reason}")
        if not resp.candidates:
            raise PermanentError("Gemini returned no candidate")
        candidate = resp.candidates[0]
        text = "".join(p.text for p in (candidate.content.parts if candidate.content and candidate.content.parts
                                        else []) if getattr(p, "text", None) and not getattr(p, "thought", None))
        reason = str(getattr(candidate, "finish_reason", "") or "")
        if not text and reason and not reason.endswith(("STOP", "MAX_TOKENS")):
            raise PermanentError(f"Gemini returned no text (finish reason {reason})")
        usage = {}
        um = resp.usage_metadata
        if um is not None:
            usage = {"prompt_tokens": um.prompt_token_count or 0,
                     "completion_tokens": um.candidates_token_count or 0,
                     "total_tokens": um.total_token_count or 0}
            if um.thoughts_token_count is not None:
                usage["reasoning_tokens"] = um.thoughts_token_count  # thinking, billed as output
        return Response(text=text, usage=usage, model_version=resp.model_version)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except AttributeError:
                pass
            self._client = None
