"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol (and Gemini's
``models/<id>:generateContent``), for tests and benchmarks. It records every request body and
path and can answer a scripted sequence of statuses."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def image_hashes(body: dict) -> list[str]:
    out = []
    for c in body.get("contents", []):  # Gemini
        for part in c.get("parts", []):
            inline = part.get("inline_data") or part.get("inlineData")
            if inline:
                data = inline["data"]  # the SDK sends URL-safe base64, sometimes unpadded
                raw = base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_") + "=" * (-len(data) % 4))
                out.append(hashlib.sha256(raw).hexdigest())
    for m in body.get("messages", []):
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    b64 = part["image_url"]["url"].split(",", 1)[1]
                    out.append(hashlib.sha256(base64.b64decode(b64)).hexdigest())
    return out


class FakeOpenAI:
    def __init__(self, answer: Callable[[dict], str] | None = None, script: list[int] | None = None,
                 latency: float = 0.0, retry_after: str | None = None, usage: dict | None = None,
                 gemini_usage: dict | None = None, gemini_thought: str | None = None, keep_alive: bool = False,
                 status_for: Callable[[dict], int] | None = None,
                 raw: Callable[[dict, dict], tuple[int, bytes, str] | None] | None = None):
        """``raw(body, headers)`` may return (status, body bytes, content type) to send instead of
        the normal reply (hostile-reply tests: HTML, truncated JSON, a 401 echoing the key)."""
        self.keep_alive = keep_alive  # HTTP/1.1 persistent connections, as real API servers keep them
        self.answer = answer or (lambda body: "Lymphocyte")
        self.raw = raw
        self.script = list(script or [])
        self.status_for = status_for  # a status chosen from the request body (after the script)
        self.latency = latency
        self.retry_after = retry_after
        self.usage = usage or {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        self.gemini_usage = gemini_usage or {"promptTokenCount": 10, "candidatesTokenCount": 3, "totalTokenCount": 13}
        self.gemini_thought = gemini_thought  # a thought-summary part sent before the answer
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length", 0))
        body = json.loads(handler.rfile.read(length) or b"{}")
        with self._lock:
            self.requests.append(body)
            self.paths.append(handler.path)
            status = self.script.pop(0) if self.script else (self.status_for(body) if self.status_for else 200)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            gemini = ":generateContent" in handler.path
            special = self.raw(body, dict(handler.headers)) if self.raw else None
            if special is not None:
                status, data, ctype = special
                handler.send_response(status)
                handler.send_header("content-type", ctype)
                handler.send_header("content-length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
                return
            if status != 200:
                payload = {"error": {"message": f"scripted {status}", "type": "test", "code": status}}
                if gemini:
                    payload = {"error": {"code": status, "message": f"scripted {status}", "status": "TEST"}}
                data = json.dumps(payload).encode()
                handler.send_response(status)
                if status == 429 and self.retry_after is not None:
                    handler.send_header("retry-after", self.retry_after)
            elif gemini:
                parts = ([{"text": self.gemini_thought, "thought": True}] if self.gemini_thought else []) + [
                    {"text": self.answer(body)}]
                payload = {"candidates": [{"content": {"role": "model", "parts": parts},
                                           "finishReason": "STOP", "index": 0}],
                           "usageMetadata": dict(self.gemini_usage),
                           "modelVersion": handler.path.split("/models/")[-1].split(":")[0]}
                data = json.dumps(payload).encode()
                handler.send_response(200)
            else:
                text = self.answer(body)
                payload = {
                    "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": dict(self.usage),
                }
                data = json.dumps(payload).encode()
                handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        finally:
            with self._lock:
                self.statuses.append(status)
                self.in_flight -= 1

    def start(self) -> str:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if self.keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = self.keep_alive  # TCP_NODELAY, as production servers set it

            def do_POST(self):  # noqa: N802
                outer._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        self.base_url = self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # a server in its own process (benchmarks): prints its URL, serves until killed
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--answer", default="Lymphocyte")
    ap.add_argument("--close", action="store_true", help="close each connection (HTTP/1.0) instead of keeping it")
    a = ap.parse_args()
    srv = FakeOpenAI(lambda body: a.answer, latency=a.latency, keep_alive=not a.close)
    print(srv.start(), flush=True)
    threading.Event().wait()
