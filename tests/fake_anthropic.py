"""A real HTTP server on 127.0.0.1 speaking Anthropic's Messages API (``POST /v1/messages``), for
tests: records each request's body and headers, answers through a function of the body, and can
answer a scripted sequence of statuses with chosen response headers (rate limits)."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def image_hashes(body: dict) -> list[str]:
    out = []
    for m in body.get("messages", []):
        for block in m.get("content", []):
            if isinstance(block, dict) and block.get("type") == "image":
                out.append(hashlib.sha256(base64.b64decode(block["source"]["data"])).hexdigest())
    return out


class FakeAnthropic:
    def __init__(self, answer: Callable[[dict], str] | None = None,
                 script: list[tuple[int, dict[str, str]]] | None = None, usage: dict | None = None,
                 thinking: str | None = None):
        self.answer = answer or (lambda body: "Lymphocyte")
        self.script = list(script or [])
        self.usage = usage or {"input_tokens": 12, "output_tokens": 4}
        self.thinking = thinking
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers.get("content-length", 0))) or b"{}")
        with self._lock:
            self.requests.append(body)
            self.headers.append({k.lower(): v for k, v in h.headers.items()})
            self.paths.append(h.path)
            status, extra = self.script.pop(0) if self.script else (200, {})
            self.statuses.append(status)
        if status != 200:
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "invalid_request_error")
            payload = {"type": "error", "error": {"type": kind, "message": f"scripted {status}"}}
        else:
            content = ([{"type": "thinking", "thinking": self.thinking, "signature": "sig"}] if self.thinking else [])
            content.append({"type": "text", "text": self.answer(body)})
            payload = {"id": f"msg_{len(self.requests)}", "type": "message", "role": "assistant",
                       "model": body.get("model", "fake"), "content": content, "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": dict(self.usage)}
        data = json.dumps(payload).encode()
        h.send_response(status)
        for k, v in extra.items():
            h.send_header(k, v)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def __enter__(self) -> "FakeAnthropic":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
