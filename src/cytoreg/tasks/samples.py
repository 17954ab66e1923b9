"""Samples and lazily-read images."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cytoreg.errors import DataError


@dataclass(frozen=True)
class ImageRef:
    """Where an image's bytes come from; nothing is read until :meth:`read_bytes`."""

    path: Path | None = None
    loader: Callable[[], bytes] | None = field(default=None, compare=False)
    description: str = ""

    def read_bytes(self) -> bytes:
        try:
            if self.path is not None:
                return self.path.read_bytes()
            if self.loader is not None:
                return self.loader()
        except OSError as exc:
            raise DataError(f"cannot read image {self}: {exc.strerror or exc}") from exc
        raise DataError("image reference with neither a path nor a loader")

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else self.description


@dataclass(frozen=True)
class Sample:
    id: str
    label: str | None
    image: ImageRef
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_image(data: bytes, where: str = ""):
    """Decode image bytes to an RGB PIL image (CMYK, 16-bit, palette and alpha are converted)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode image {where}: {exc}") from exc
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() or 1.0
        img = Image.fromarray((arr / hi * 255).astype("uint8"))
    return img.convert("RGB")


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
