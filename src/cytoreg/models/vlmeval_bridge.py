"""VLMEvalKit bridge: any model in ``vlmeval.config.supported_VLM``, by name.

VLMEvalKit runs in a separate worker process because importing ``vlmeval`` turns off SSL
certificate checks for the whole process, and because its models report failures as answer
strings ("Failed to obtain answer ..."), which the bridge turns into error records. Our chat
messages are flattened to its ``[{'type': 'image'|'text', 'value': ...}]`` format in order
(system text first); images are passed as file paths, as VLMEvalKit expects.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import tempfile
from pathlib import Path
from typing import Sequence

from cytoreg.errors import ModelLoadError
from cytoreg.models.base import ChatRequest, Generator, ImagePart, Response, TextPart

#: VLMEvalKit's failure answers all start with this (FAIL_MSG in vlmeval/constant.py and the inference modules)
FAIL_MARKER = "Failed to obtain answer"
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tif", "image/webp": ".webp"}


def to_vlmeval(request: ChatRequest, tmpdir: Path) -> list[dict]:
    """Flatten a chat request into VLMEvalKit's interleaved message list."""
    out: list[dict] = []
    ordered = [m for m in request.messages if m.role == "system"] + [m for m in request.messages if m.role != "system"]
    for m in ordered:
        for p in m.parts:
            if isinstance(p, TextPart):
                out.append({"type": "text", "value": p.text})
            else:
                out.append({"type": "image", "value": _image_path(p, tmpdir)})
    return out


#: what VLMEvalKit's models read as they are; anything else (TIFF, CMYK, EXIF-rotated) goes as PNG
PASSABLE = frozenset({"image/png", "image/jpeg"})


def _image_path(part: ImagePart, tmpdir: Path) -> str:
    """The file itself when it decodes cleanly as it is, else a PNG of the decoded image
    (:func:`cytoreg.images.api_image`); an undecodable image raises before VLMEvalKit sees it."""
    data, mime = part.payload(PASSABLE)
    if part.sent == "original" and part.image.path is not None:
        return str(Path(part.image.path).resolve())
    path = tmpdir / f"{part.sha}{EXTENSIONS.get(mime, '.png')}"
    if not path.exists():
        path.write_bytes(data)
    return str(path)


def _worker(conn, model_name: str, imports: list[str]) -> None:  # runs in the child process
    try:
        for module in imports:
            importlib.import_module(module)
        from vlmeval.config import supported_VLM

        if model_name not in supported_VLM:
            close = difflib.get_close_matches(model_name, list(supported_VLM), n=3)
            conn.send(("error", f"'{model_name}' is not in VLMEvalKit's supported_VLM ({len(supported_VLM)} "
                                f"models){'; did you mean ' + ', '.join(close) + '?' if close else ''}"))
            return
        model = supported_VLM[model_name]()
        conn.send(("ready", type(model).__name__))
    except Exception as exc:  # reported to the parent as a load error
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        _, message, dataset = msg
        try:
            conn.send(("ok", model.generate(message=message, dataset=dataset)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class VLMEvalBridge(Generator):
    mode = "batched"
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            "model": {"type": "string", "description": "a key of vlmeval.config.supported_VLM"},
            "imports": {"type": "array", "items": {"type": "string"},
                        "description": "modules imported in the worker first (e.g. one that registers your own model)"},
            "dataset": {"type": "string", "description": "dataset name passed to VLMEvalKit's generate (prompt tweaks)"},
            "start_timeout": {"type": "number", "exclusiveMinimum": 0,
                              "description": "seconds to wait for the worker to import vlmeval and build the model"},
        },
    }

    def __init__(self, spec, device=None):
        super().__init__(spec, device)
        self._proc = None
        self._conn = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def weights_identity(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("ms-vlmeval", "nvidia-vlmeval", "vlmeval"):
            try:
                return f"{self.params['model']}@{dist}-{version(dist)}"
            except PackageNotFoundError:
                continue
        return self.params["model"]

    def load(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        if importlib.util.find_spec("vlmeval") is None:
            raise ModelLoadError(f"model '{self.name}' uses the VLMEvalKit bridge, but vlmeval is not installed: "
                                 "pip install 'cytoreg[vlmeval]' (ms-vlmeval)")
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(child, self.params["model"], list(self.params.get("imports", []))),
                                 daemon=True, name=f"vlmeval-{self.name}")
        self._proc.start()
        child.close()
        timeout = float(self.params.get("start_timeout", 600))
        if not self._conn.poll(timeout):
            self.close()
            raise ModelLoadError(f"model '{self.name}': the VLMEvalKit worker did not start within {timeout:.0f} s "
                                 "(params.start_timeout)")
        try:
            status, info = self._conn.recv()
        except EOFError:
            status, info = "error", f"the worker exited with code {self._proc.exitcode}"
        if status != "ready":
            self.close()
            raise ModelLoadError(f"model '{self.name}' (VLMEvalKit '{self.params['model']}'): {info} "
                                 f"(spec {self.spec.path})")
        self._tmp = tempfile.TemporaryDirectory(prefix="cytoreg-vlmeval-")

    def generate_batch(self, requests: Sequence[ChatRequest]) -> list[Response]:
        self.load()
        timeout = float((self.spec.get("execution") or {}).get("timeout", 600))
        out = []
        for req in requests:
            out.append(self._one(req, timeout))
        return out

    def _one(self, req: ChatRequest, timeout: float) -> Response:
        if self._proc is None or not self._proc.is_alive():
            self.close()
            self.load()  # a worker that died on the previous sample is restarted
        self._conn.send(("generate", to_vlmeval(req, Path(self._tmp.name)), self.params.get("dataset")))
        if not self._conn.poll(timeout):
            self.close()  # a hung model: kill the worker, the next sample restarts it
            return Response(error=f"VLMEvalKit model did not answer within {timeout:.0f} s (execution.timeout)")
        try:
            status, value = self._conn.recv()
        except EOFError:
            code = self._proc.exitcode if self._proc else None
            self.close()
            return Response(error=f"the VLMEvalKit worker died (exit code {code})")
        if status != "ok":
            return Response(error=f"VLMEvalKit: {value}")
        if not isinstance(value, str):
            return Response(error=f"VLMEvalKit returned {type(value).__name__}, not text: {value!r:.200}")
        if FAIL_MARKER in value:
            return Response(error=f"VLMEvalKit reported a failure: {value[:300]}")
        return Response(text=value)

    def close(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            try:
                conn.send(("stop",))
            except (OSError, EOFError, BrokenPipeError):
                pass
            conn.close()
        if proc is not None:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
