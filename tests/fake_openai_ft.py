"""A local HTTP server speaking the OpenAI Files and fine-tuning endpoints (and chat completions,
through :class:`fake_openai.FakeOpenAI`), for tests of ``cytoreg finetune`` with the real SDK.

Files are stored as uploaded (multipart), jobs go validating_files → running → a scripted end
state after ``polls_to_finish`` retrievals, and every upload, job creation and chat request is
recorded so tests can assert what was sent and that a rerun sends nothing new."""
from __future__ import annotations

import json
import threading
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl, urlparse

from fake_openai import FakeOpenAI


class FakeFineTuning(FakeOpenAI):
    def __init__(self, answer: Callable[[dict], str] | None = None, polls_to_finish: int = 2,
                 outcome: Callable[[dict], tuple[str, str | None]] | None = None):
        super().__init__(answer)
        self.polls_to_finish = polls_to_finish
        self.outcome = outcome or (lambda job: ("succeeded", None))
        self.files: dict[str, dict] = {}        # id -> {"filename", "purpose", "content"}
        self.jobs: dict[str, dict] = {}         # id -> job JSON (+ "_polls")
        self.uploads: list[str] = []            # file ids in upload order
        self.created: list[dict] = []           # job-create request bodies
        self.fail_next_list = 0                 # scripted 500s on the next job lists

    # -- helpers ---------------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _file_json(self, fid: str) -> dict:
        f = self.files[fid]
        return {"id": fid, "object": "file", "bytes": len(f["content"]), "created_at": 0,
                "filename": f["filename"], "purpose": f["purpose"], "status": "processed"}

    def _job_json(self, job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def file_lines(self, fid: str) -> list[dict]:
        return [json.loads(x) for x in self.files[fid]["content"].decode().splitlines() if x.strip()]

    # -- routes ----------------------------------------------------------------------------
    def _post(self, h: BaseHTTPRequestHandler) -> None:
        path = urlparse(h.path).path
        if path.endswith("/chat/completions"):
            return self._handle(h)
        body = h.rfile.read(int(h.headers.get("content-length", 0)))
        with self._lock:
            if path.endswith("/files"):
                msg = BytesParser(policy=email_policy).parsebytes(
                    b"content-type: " + h.headers["content-type"].encode() + b"\r\n\r\n" + body)
                fields = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
                fid = f"file-{len(self.files) + 1:04d}"
                self.files[fid] = {"filename": fields["file"].get_filename(),
                                   "purpose": fields["purpose"].get_content(),
                                   "content": fields["file"].get_payload(decode=True)}
                self.uploads.append(fid)
                return self._send(h, 200, self._file_json(fid))
            if path.endswith("/fine_tuning/jobs"):
                req = json.loads(body)
                self.created.append(req)
                if req["training_file"] not in self.files:
                    return self._send(h, 400, {"error": {"message": f"no file {req['training_file']}",
                                                         "type": "invalid_request_error"}})
                jid = f"ftjob-{len(self.jobs) + 1:04d}"
                hp = (req.get("method") or {}).get("supervised", {}).get("hyperparameters", {})
                self.jobs[jid] = {"id": jid, "object": "fine_tuning.job", "created_at": 0, "error": None,
                                  "fine_tuned_model": None, "finished_at": None,
                                  "hyperparameters": {"n_epochs": hp.get("n_epochs", "auto"),
                                                      "batch_size": hp.get("batch_size", "auto"),
                                                      "learning_rate_multiplier": hp.get("learning_rate_multiplier", "auto")},
                                  "model": req["model"], "organization_id": "org-test", "result_files": [],
                                  "seed": req.get("seed", 0), "status": "validating_files", "trained_tokens": None,
                                  "training_file": req["training_file"], "validation_file": req.get("validation_file"),
                                  "metadata": req.get("metadata"), "method": req.get("method"),
                                  "_suffix": req.get("suffix"), "_polls": 0}
                return self._send(h, 200, self._job_json(self.jobs[jid]))
        self._send(h, 404, {"error": {"message": f"no route POST {path}"}})

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        query = dict(parse_qsl(url.query))
        with self._lock:
            self.paths.append(h.path)
            if url.path.endswith("/files"):
                data = [self._file_json(f) for f in self.files if self.files[f]["purpose"] == query.get("purpose",
                                                                                                      self.files[f]["purpose"])]
                return self._send(h, 200, {"object": "list", "data": data, "has_more": False})
            if url.path.endswith("/fine_tuning/jobs"):
                if self.fail_next_list:
                    self.fail_next_list -= 1
                    return self._send(h, 500, {"error": {"message": "scripted 500"}})
                want = {k[len("metadata["):-1]: v for k, v in query.items() if k.startswith("metadata[")}
                data = [self._job_json(j) for j in self.jobs.values()
                        if all((j.get("metadata") or {}).get(k) == v for k, v in want.items())]
                return self._send(h, 200, {"object": "list", "data": data, "has_more": False})
            if "/fine_tuning/jobs/" in url.path:
                jid = url.path.rsplit("/", 1)[1]
                job = self.jobs.get(jid)
                if job is None:
                    return self._send(h, 404, {"error": {"message": f"no job {jid}"}})
                job["_polls"] += 1
                if job["status"] == "validating_files":
                    job["status"] = "running"
                elif job["status"] == "running" and job["_polls"] >= self.polls_to_finish:
                    status, message = self.outcome(job)
                    job["status"] = status
                    if status == "succeeded":
                        lines = self.file_lines(job["training_file"])
                        job["trained_tokens"] = 100 * len(lines)
                        job["fine_tuned_model"] = f"ft:{job['model']}:cytoreg-test:{job['_suffix'] or 'x'}:{jid[-4:]}"
                    else:
                        job["error"] = {"code": "invalid_training_file", "message": message, "param": "training_file"}
                return self._send(h, 200, self._job_json(job))
        self._send(h, 404, {"error": {"message": f"no route GET {url.path}"}})

    def start(self) -> str:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer._post(self)

            def do_GET(self):  # noqa: N802
                outer._get(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"
