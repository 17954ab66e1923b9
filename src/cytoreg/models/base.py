"""Model capabilities. A task declares which capability it can use; adapters implement one.

- :class:`Generator`: chat messages with interleaved images → text
- :class:`Embedder`: image and text embeddings (CLIP family) → zero-shot by similarity
- :class:`Baseline`: no weights; chance-level predictions so every table has its floor
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from cytoreg.tasks.samples import ImageRef, sha256


@dataclass
class TextPart:
    text: str


@dataclass
class ImagePart:
    image: ImageRef
    _sha: str | None = field(default=None, repr=False)
    _bytes: bytes | None = field(default=None, repr=False)
    #: what :meth:`payload` sent: ``original`` or ``png: <why>``
    sent: str | None = field(default=None, repr=False)

    def data(self) -> bytes:
        if self._bytes is None:
            self._bytes = self.image.read_bytes()
        return self._bytes

    @property
    def sha(self) -> str:
        if self._sha is None:
            self._sha = sha256(self.data())
        return self._sha

    def payload(self, sendable: frozenset[str]) -> tuple[bytes, str]:
        """(bytes, MIME type) to send to an API that accepts ``sendable`` types: the file's own
        bytes when it decodes cleanly and needs no change, else the decoded image as PNG
        (:func:`cytoreg.images.api_image`). An image that does not decode raises
        :class:`cytoreg.images.ImageDecodeError`: it is never sent."""
        from cytoreg.images import api_image

        data, mime, self.sent = api_image(self.data(), str(self.image), sendable)
        return data, mime

    def mime(self) -> str:
        head = self.data()[:12]
        if head.startswith(b"\x89PNG"):
            return "image/png"
        if head[:3] == b"\xff\xd8\xff":
            return "image/jpeg"
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return "image/tiff"
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "image/webp"
        return "application/octet-stream"

    def release(self) -> None:
        """Drop the cached bytes once the request is done (keeps memory flat)."""
        self._bytes = None


Part = TextPart | ImagePart


@dataclass
class Message:
    role: str
    parts: list[Part]


@dataclass
class ChatRequest:
    messages: list[Message]
    generation: dict[str, Any]
    try_index: int = 0

    def canonical(self) -> dict:
        """Everything that determines the answer: texts, image hashes, settings, try index."""
        return {
            "messages": [{"role": m.role, "parts": [{"text": p.text} if isinstance(p, TextPart)
                                                     else {"image_sha256": p.sha} for p in m.parts]}
                         for m in self.messages],
            "generation": self.generation,
            "try": self.try_index,
        }

    def images(self) -> list[ImagePart]:
        return [p for m in self.messages for p in m.parts if isinstance(p, ImagePart)]

    def release(self) -> None:
        for p in self.images():
            p.release()


@dataclass
class Response:
    text: str | None = None
    scores: dict[str, float] | None = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    model_version: str | None = None
    latency_s: float | None = None  # the answering call's wall time (a local batch: the batch's)

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {}, [])}

    @classmethod
    def from_json(cls, d: dict) -> "Response":
        return cls(**d)


class TransientError(Exception):
    """A failure worth retrying (429, 5xx, timeout); ``retry_after`` in seconds if the server said.
    ``kind`` groups failures for the circuit breaker (default: the status, else the message's type)."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None,
                 kind: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.kind = kind or (f"HTTP {status}" if status else message.split(":", 1)[0])


class PermanentError(Exception):
    """A failure of this request that retrying will not fix (a content-policy refusal, a 400 for
    this input). Other requests of the model go on; the circuit breaker counts them by ``kind``."""

    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        self.kind = kind or message.split(":", 1)[0]


class FatalError(PermanentError):
    """A failure no request of this model can escape (bad key, unknown model, host not found,
    connection refused): the model is stopped at once. ``fix`` tells the user what to change."""

    def __init__(self, message: str, kind: str, fix: str):
        super().__init__(message, kind)
        self.fix = fix


#: params that say where or how a model is reached, or which feature sets to read (each feature
#: set is keyed by its own name), never what it answers: left out of the cache identity
NOT_IDENTITY = frozenset({"base_url", "base_url_env", "api_key_env", "download_hint", "checkpoint_env",
                          "start_timeout", "device_map", "layers", "pooling"})


class ModelAdapter:
    capability: ClassVar[str] = ""
    params_schema: ClassVar[dict] = {"type": "object"}
    supports_remote_code: ClassVar[bool] = False

    def __init__(self, spec: Any, device: str | None = None):
        self.spec = spec
        self.params: dict = dict(spec.get("params") or {})
        self.device = device
        execution = spec.get("execution") or {}
        self.batch_size: int = int(execution.get("batch_size", 16))
        self.concurrency: int = int(execution.get("concurrency", 8))
        self.max_retries: int = int(execution.get("max_retries", 6))
        self.initial_backoff: float = float(execution.get("initial_backoff", 1.0))
        self.max_backoff: float = float(execution.get("max_backoff", 60.0))
        #: DataLoader workers for image decoding / preprocessing (local models)
        self.workers: int | None = execution.get("workers")

    @property
    def name(self) -> str:
        return self.spec.name

    def weights_identity(self) -> str:
        """What identifies the weights beyond the params (a file hash, a revision). Default: none."""
        return ""

    def identity(self) -> dict:
        """What decides a reply or an embedding, besides the request itself: adapter, the params
        except those that only say where or how the model is reached (:data:`NOT_IDENTITY`), the
        weights, ``trust_remote_code`` and the spec's ``cache_key``. Not the description, tags,
        execution settings (concurrency, retries, timeouts, batch size, workers) or a local
        server's host and port, so editing those re-sends nothing."""
        return {"adapter": self.spec.get("adapter"),
                "params": {k: v for k, v in sorted(self.params.items()) if k not in NOT_IDENTITY},
                "weights": self.weights_identity(), "trust_remote_code": bool(self.spec.get("trust_remote_code")),
                "cache_key": self.spec.get("cache_key")}

    def fingerprint(self) -> str:
        """The model part of every cache key (responses, embeddings, features)."""
        payload = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def check(self) -> list[str]:
        """Preflight (``cytoreg eval --check``, and before any run): what would stop :meth:`load`,
        as messages naming the fix. Must not load weights or send requests. Default: the shared
        answer of :mod:`cytoreg.models.check` (packages, weights, key, endpoint, read from the
        spec's params). Override only to add what is specific to the adapter (a package, a
        tokenizer file): ``return super().check() + [...]``."""
        from cytoreg.models.check import check

        return check(self.spec, deep=False).messages()

    def load(self) -> None:
        """Load weights / open clients. The engine calls it once per run, in the main process,
        before the first request the caches cannot answer (never for a fully cached rerun)."""

    def close(self) -> None:
        """Release clients or memory."""


def ensure_loaded(adapter: ModelAdapter) -> None:
    """The engine's lifecycle guarantee: ``load()`` runs once per adapter object, in the main
    process, before its first uncached request; ``close()`` releases it at the end of the model's
    work."""
    if not getattr(adapter, "_cytoreg_loaded", False):
        import logging

        logging.getLogger("cytoreg.models").info("loading model '%s' (%s)", adapter.name, type(adapter).__name__)
        adapter.load()
        adapter._cytoreg_loaded = True  # type: ignore[attr-defined]


def stack_batch(items: list) -> Any:
    """``torch.stack`` of preprocessed images; numpy arrays (a plugin's ``preprocess`` may return
    them) become tensors first."""
    import torch

    return torch.stack([torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
                        for x in items])


class Generator(ModelAdapter):
    capability = "generator"
    #: "concurrent": requests run in a thread pool (APIs); "batched": ``generate_batch`` (local)
    mode: ClassVar[str] = "concurrent"
    #: image types an API accepts as they are (others are sent as PNG); None for local models
    sendable_mimes: ClassVar[frozenset[str] | None] = None

    def generate(self, request: ChatRequest) -> Response:
        raise NotImplementedError

    def generate_batch(self, requests: Sequence[ChatRequest]) -> list[Response]:
        return [self.generate(r) for r in requests]


class Embedder(ModelAdapter):
    """Image/text embeddings in one space. ``preprocess`` runs in DataLoader workers (one PIL
    image → one tensor); ``encode_batch`` runs in the main process on a stacked batch."""

    capability = "embedder"

    def preprocess(self, image: Any) -> Any:
        raise NotImplementedError

    def encode_batch(self, batch: Any) -> np.ndarray:
        """L2-normalised image embeddings of a preprocessed batch, shape (n, d)."""
        raise NotImplementedError

    def encode_images(self, images: list) -> np.ndarray:
        """L2-normalised image embeddings of PIL images, shape (n, d)."""
        return self.encode_batch(stack_batch([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """L2-normalised text embeddings, shape (n, d)."""
        raise NotImplementedError

    def logit_scale(self) -> float:
        raise NotImplementedError

    def zero_shot_probs(self, image_emb: np.ndarray, class_emb: np.ndarray) -> np.ndarray:
        """Per-label scores from the model's own head (n, labels); CLIP's softmax over labels of
        logit_scale × cosine unless an adapter's model says otherwise (SigLIP: sigmoid)."""
        from cytoreg.tasks.kinds import zero_shot_scores

        return zero_shot_scores(image_emb, class_emb, self.logit_scale())


class FeatureExtractor(ModelAdapter):
    """Frozen image features for probes: one or more named feature sets per image (the final
    embedding, or a hidden layer × pooling of a VLM). ``preprocess`` runs in DataLoader workers;
    ``extract_batch`` runs in the main process on ``collate``'s batch."""

    capability = "features"

    def feature_keys(self) -> list[str]:
        """Names of the feature sets ``extract_batch`` returns, e.g. ``["cls"]`` or ``["layer8/mean"]``."""
        raise NotImplementedError

    def preprocess(self, image: Any) -> Any:
        raise NotImplementedError

    def collate(self, items: list) -> Any:
        return stack_batch(items)

    def extract_batch(self, batch: Any) -> dict[str, np.ndarray]:
        """Feature key → array (n, d) for the batch."""
        raise NotImplementedError


class EmbedderFeatures(FeatureExtractor):
    """Any image embedder (CLIP image tower, CONCH) used as a feature extractor."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def __getattr__(self, name: str) -> Any:  # spec, params, batch_size, workers, _device, ...
        if name == "embedder":
            raise AttributeError(name)
        return getattr(self.embedder, name)

    def fingerprint(self) -> str:
        return self.embedder.fingerprint()

    def feature_keys(self) -> list[str]:
        return ["embedding"]

    def load(self) -> None:
        ensure_loaded(self.embedder)

    def preprocess(self, image: Any) -> Any:
        return self.embedder.preprocess(image)

    def extract_batch(self, batch: Any) -> dict[str, np.ndarray]:
        return {"embedding": self.embedder.encode_batch(batch)}

    def close(self) -> None:
        self.embedder.close()


class Baseline(ModelAdapter):
    capability = "baseline"

    def predict(self, sample_ids: Sequence[str], labels: Sequence[str], prior: np.ndarray,
                seed: int) -> tuple[list[str], np.ndarray]:
        raise NotImplementedError
