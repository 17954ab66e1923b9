"""A real HTTP file server on 127.0.0.1 for download tests: serves bytes by path, honours
``Range: bytes=N-`` (206 + Content-Range), and can drop the connection part-way through the
first response for a path (headers promise the whole file, the socket closes after ``cut`` bytes)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self, files: dict[str, bytes], cut_first: dict[str, int] | None = None, ranges: bool = True):
        self.files = files
        self.cut_first = dict(cut_first or {})
        self.ranges = ranges
        self.log: list[tuple[str, str | None, int]] = []  # path, Range header, status
        self._server: ThreadingHTTPServer | None = None

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        rng = h.headers.get("Range")
        body = self.files.get(path)
        if body is None:
            self.log.append((path, rng, 404))
            h.send_response(404)
            h.send_header("content-length", "0")
            h.end_headers()
            return
        start = 0
        if rng and self.ranges:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(body):
                self.log.append((path, rng, 416))
                h.send_response(416)
                h.send_header("content-range", f"bytes */{len(body)}")
                h.send_header("content-length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("content-range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.log.append((path, rng, 206))
        else:
            h.send_response(200)
            self.log.append((path, rng, 200))
        chunk = body[start:]
        h.send_header("content-length", str(len(chunk)))
        h.send_header("accept-ranges", "bytes" if self.ranges else "none")
        h.end_headers()
        cut = self.cut_first.pop(path, None)
        if cut is not None:
            h.wfile.write(chunk[:cut])
            h.wfile.flush()
            h.close_connection = True
            import socket

            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(chunk)

    def start(self) -> str:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                outer._get(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FileServer":
        self.url = self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
