"""The one image decode path: every adapter (DataLoader workers, local models, API adapters) and
the run's pre-check decode images here, the same way.

- bytes are read once; a missing file, a dangling symlink or an unreadable file is an
  :class:`ImageDecodeError` naming the path;
- the pixel count is checked against :data:`MAX_PIXELS` from the header, before any pixel is
  decoded (a decompression bomb is refused, whatever ``Image.MAX_IMAGE_PIXELS`` says);
- the image is decoded fully (``load()``) with ``ImageFile.LOAD_TRUNCATED_IMAGES`` off, so a
  truncated or garbled file fails here instead of arriving grey-padded at the model;
- EXIF orientation is applied (``ImageOps.exif_transpose``): the model sees the image upright;
- the mode becomes RGB: CMYK and palette are converted, alpha (RGBA, LA, transparent palettes)
  is composited onto white, 16/32-bit greyscale (``I;16``, ``I``, ``F``) is scaled by the
  image's maximum to 8 bits.

What an API adapter sends (:func:`api_image`): the original bytes when the file decodes cleanly,
is of a type the API accepts, needs no orientation fix and is RGB or greyscale; otherwise the
decoded RGB image re-encoded as PNG. :meth:`ImageInfo.api_form` says which, and why, per sample.
"""
from __future__ import annotations

import io
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Union

from cytoreg.errors import DataError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from cytoreg.tasks.samples import ImageRef

#: largest image accepted, in pixels (PIL's own default, ~9459²); ``CYTOREG_MAX_IMAGE_PIXELS`` overrides
MAX_PIXELS = int(os.environ.get("CYTOREG_MAX_IMAGE_PIXELS", "89478485"))

ImageSource = Union[str, Path, "ImageRef", bytes]

_TRUNCATION_LOCK = threading.Lock()
_BYTESIO = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


class ImageDecodeError(DataError):
    """An image that cannot be used. ``problem`` is one of ``missing file``, ``unreadable``,
    ``does not decode``, ``too large``; the message names the file and the decoder's reason."""

    def __init__(self, name: str, problem: str, reason: str):
        self.name, self.problem, self.reason = name, problem, reason
        super().__init__(f"{name}: {problem}: {reason}")


@dataclass(frozen=True)
class ImageInfo:
    """What the decode of one image found (kept per sample by the run's pre-check)."""

    name: str
    error: str | None = None
    problem: str | None = None
    mime: str | None = None
    mode: str | None = None
    size: tuple[int, int] | None = None
    oriented: bool = False   # EXIF orientation was applied
    frames: int = 1

    def api_form(self, sendable: Iterable[str]) -> str:
        """``original`` when an API gets the file's own bytes, else ``png: <why>``."""
        why = []
        if self.mime not in set(sendable):
            why.append(f"{self.mime or 'unknown type'} not accepted")
        if self.oriented:
            why.append("EXIF orientation applied")
        if self.mode not in ("RGB", "L"):
            why.append(f"mode {self.mode} converted to RGB")
        if self.frames > 1:
            why.append(f"first of {self.frames} frames")
        return "png: " + "; ".join(why) if why else "original"


def read_bytes(src: ImageSource, name: str | None = None) -> tuple[bytes, str]:
    """(the image's bytes, its name for messages); missing / unreadable files raise ImageDecodeError."""
    from cytoreg.tasks.samples import ImageRef

    if isinstance(src, bytes):
        return src, name or "image bytes"
    if isinstance(src, ImageRef):
        if src.path is None:
            label = name or str(src)
            try:
                return src.read_bytes(), label
            except DataError as exc:
                raise ImageDecodeError(label, "unreadable", str(exc)) from None
        src = src.path
    path = Path(src)
    label = name or str(path)
    try:
        return path.read_bytes(), label
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageDecodeError(label, "missing file", f"dangling symlink to {os.readlink(path)}") from None
        raise ImageDecodeError(label, "missing file", "no such file") from None
    except OSError as exc:
        raise ImageDecodeError(label, "unreadable", exc.strerror or str(exc)) from None


@dataclass
class Decoded:
    image: "PILImage.Image"   # RGB, upright
    info: ImageInfo


def decode(data: bytes, name: str) -> Decoded:
    """Decode fully, orient and convert to RGB; raises :class:`ImageDecodeError`."""
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    _guard_pil(Image)
    if not data:
        raise ImageDecodeError(name, "does not decode", "empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(name, "does not decode",
                               "not a known image format, or its header is damaged") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(name, "too large", f"{exc}; raise CYTOREG_MAX_IMAGE_PIXELS if the image is "
                               "genuine") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(name, "does not decode", _clean(exc, name)) from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageDecodeError(name, "too large", f"{w}×{h} = {w * h:,} pixels is more than the limit of "
                               f"{MAX_PIXELS:,} (a decompression bomb?); raise CYTOREG_MAX_IMAGE_PIXELS if "
                               "the image is genuine")
    fmt, mode, frames = img.format, img.mode, int(getattr(img, "n_frames", 1) or 1)
    try:
        if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone switched it on: decode strictly all the same
            with _TRUNCATION_LOCK:
                ImageFile.LOAD_TRUNCATED_IMAGES = False
                try:
                    img.load()
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = True
        else:
            img.load()
        oriented = img.getexif().get(0x0112, 1) in (2, 3, 4, 5, 6, 7, 8)
        upright = ImageOps.exif_transpose(img) if oriented else img
    except Exception as exc:  # PIL's plugins raise OSError, ValueError, SyntaxError, struct.error, ...
        raise ImageDecodeError(name, "does not decode", _clean(exc, name)) from None
    info = ImageInfo(name, mime=Image.MIME.get(fmt or ""), mode=mode, size=upright.size, oriented=oriented,
                     frames=frames)
    return Decoded(to_rgb(upright), info)


_GUARDED = False


def _guard_pil(Image: Any) -> None:
    """Our limit decides: PIL's own bomb check must not refuse below it, and its warning (for
    images our check refuses anyway) is silenced. A library that set the limit to None does not
    switch the guard off: :func:`decode` checks the header itself."""
    global _GUARDED
    if _GUARDED:
        return
    import warnings

    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    _GUARDED = True


def _clean(exc: BaseException, name: str) -> str:
    text = _BYTESIO.sub(name, str(exc)) or type(exc).__name__
    return text if "truncated" not in text else f"{text} (the file is cut short; download it again)"


def to_rgb(img: "PILImage.Image") -> "PILImage.Image":
    """RGB, whatever the mode: alpha onto white, high bit depths scaled by their maximum."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        return Image.fromarray((np.clip(arr, 0, None) / hi * 255).round().astype("uint8")).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(src: ImageSource, name: str | None = None) -> "PILImage.Image":
    """An RGB, upright PIL image; raises :class:`ImageDecodeError` naming the file."""
    data, label = read_bytes(src, name)
    return decode(data, label).image


def inspect_image(src: ImageSource, name: str | None = None) -> ImageInfo:
    """Decode and report; never raises for a bad image (``error`` holds the message)."""
    try:
        data, label = read_bytes(src, name)
        return decode(data, label).info
    except ImageDecodeError as exc:
        return ImageInfo(exc.name, error=str(exc), problem=exc.problem)


def check_image(src: ImageSource, name: str | None = None) -> str | None:
    """None when the image decodes, else the message (file and reason)."""
    return inspect_image(src, name).error


def png_bytes(img: "PILImage.Image") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def api_image(data: bytes, name: str, sendable: Iterable[str]) -> tuple[bytes, str, str]:
    """(bytes to send, their MIME type, form): the original bytes when :meth:`ImageInfo.api_form`
    says ``original``, else the decoded image as PNG. A file that does not decode raises
    :class:`ImageDecodeError`, so nothing undecodable is ever sent."""
    dec = decode(data, name)
    form = dec.info.api_form(sendable)
    if form == "original":
        return data, str(dec.info.mime), form
    return png_bytes(dec.image), "image/png", form


def inspect_many(items: dict[str, Any], workers: int | None = None) -> dict[str, ImageInfo]:
    """{key: ImageInfo} for {key: image source}, decoded in a few threads (PIL releases the GIL)."""
    if not items:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    from cytoreg import image_check_cache as remembered

    known = remembered.load()
    file_keys = {k: remembered.file_key(src) for k, src in items.items()}
    out: dict[str, ImageInfo] = {}
    for k, fk in file_keys.items():
        info = remembered.info_from(known[fk]) if fk in known else None
        if info is not None:
            out[k] = info
    keys = [k for k in items if k not in out]
    n = workers or min(8, (os.cpu_count() or 1) + 1)
    if n <= 1 or len(keys) < 8:
        out.update({k: inspect_image(items[k]) for k in keys})
    else:
        with ThreadPoolExecutor(max_workers=n) as pool:
            out.update(zip(keys, pool.map(lambda k: inspect_image(items[k]), keys)))
    new = {file_keys[k]: remembered.as_entry(out[k]) for k in keys if file_keys[k] and out[k].error is None}
    if new:
        remembered.save({**known, **new})
    return {k: out[k] for k in items}
