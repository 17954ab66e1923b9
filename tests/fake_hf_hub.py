"""A Hugging Face Hub stand-in on 127.0.0.1: the endpoints ``huggingface_hub.snapshot_download``
uses for a dataset pinned to a commit (huggingface_hub 2.x):

- ``GET /api/datasets/{repo}/tree/{commit}?recursive=True`` → the file list (path, size, oid,
  lfs {oid = SHA-256, size, pointerSize}), one page
- ``HEAD|GET /datasets/{repo}/resolve/{commit}/{path}`` → the file, with the headers the client reads
  (``X-Repo-Commit``, ``X-Linked-Etag`` = the LFS SHA-256, ``X-Linked-Size``), ``Range`` honoured

``cut_first={path: n}`` closes the socket after ``n`` bytes of the first GET of that file (the
headers promise the whole file), ``cut_always`` after every GET; ``log`` records (method, path,
Range header, status).
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class FakeHub:
    def __init__(self, repo: str, commit: str, files: dict[str, bytes], cut_first: dict[str, int] | None = None,
                 cut_always: dict[str, int] | None = None, gated: bool = False):
        self.repo, self.commit, self.files, self.gated = repo, commit, files, gated
        self.cut_first = dict(cut_first or {})
        self.cut_always = dict(cut_always or {})
        self.log: list[tuple[str, str, str | None, int]] = []
        self._server: ThreadingHTTPServer | None = None

    def _tree(self) -> list[dict]:
        out = []
        for path, data in sorted(self.files.items()):
            sha = hashlib.sha256(data).hexdigest()
            out.append({"type": "file", "path": path, "size": len(data),
                        "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                        "lfs": {"oid": sha, "size": len(data), "pointerSize": 134}})
        return out

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict | None = None,
              head: bool = False, cut: int | None = None) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if head:
            return
        if cut is not None:
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        path = unquote(url.path)
        rng = h.headers.get("Range")
        tree = f"/api/datasets/{self.repo}/tree/{self.commit}"
        resolve = f"/datasets/{self.repo}/resolve/{self.commit}/"
        if path.startswith("/api/datasets/") and "/tree/" in path and path != tree:
            # the hub's answer for a repo or commit it does not have (the client raises RepositoryNotFoundError)
            self.log.append((method, path, None, 404))
            self._send(h, 404, json.dumps({"error": "Repository not found"}).encode(),
                       {"Content-Type": "application/json", "X-Error-Code": "RepoNotFound"})
            return
        if path == tree and self.gated:
            self.log.append((method, path, None, 403))
            self._send(h, 403, json.dumps({"error": "Access to dataset is restricted"}).encode(),
                       {"Content-Type": "application/json", "X-Error-Code": "GatedRepo"})
            return
        if path == tree:
            self.log.append((method, path, None, 200))
            self._send(h, 200, json.dumps(self._tree()).encode(), {"Content-Type": "application/json"})
            return
        if path.startswith(resolve) and path[len(resolve):] in self.files:
            name = path[len(resolve):]
            data = self.files[name]
            sha = hashlib.sha256(data).hexdigest()
            headers = {"X-Repo-Commit": self.commit, "X-Linked-Etag": f'"{sha}"', "ETag": f'"{sha}"',
                       "X-Linked-Size": str(len(data)), "Accept-Ranges": "bytes"}
            start = int(rng.split("=", 1)[1].split("-", 1)[0]) if rng else 0
            status = 206 if rng else 200
            if rng:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self.log.append((method, name, rng, status))
            cut = None
            if method == "GET":
                cut = self.cut_first.pop(name, None)
                cut = self.cut_always.get(name) if cut is None else cut
            self._send(h, status, data[start:], headers, head=method == "HEAD", cut=cut)
            return
        self.log.append((method, path, rng, 404))
        self._send(h, 404, json.dumps({"error": "not found"}).encode(),
                   {"Content-Type": "application/json", "X-Error-Code": "EntryNotFound"}, head=method == "HEAD")

    def __enter__(self) -> "FakeHub":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                outer._handle(self, "GET")

            def do_HEAD(self):  # noqa: N802
                outer._handle(self, "HEAD")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
