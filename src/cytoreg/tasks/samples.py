"""Samples and lazily-read images."""
from __future__ import annotations

import hashlib
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
    #: where the row came from (``file:line``, a path), for messages about it
    where: str = field(default="", compare=False, hash=False)

    @property
    def origin(self) -> str:
        return self.where or str(self.image)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_image(data: bytes, where: str = ""):
    """Decode image bytes to an upright RGB PIL image through :mod:`cytoreg.images` (the one
    decode path); raises :class:`cytoreg.images.ImageDecodeError` naming ``where``."""
    from cytoreg import images

    return images.decode(data, where or "image bytes").image


def png_bytes(img) -> bytes:
    from cytoreg import images

    return images.png_bytes(img)
