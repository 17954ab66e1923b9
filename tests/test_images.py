"""cytoreg.images, the one decode path: orientation, mode conversion, and every way a file can
fail, each failure naming the file."""
import io
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from dataset_fixtures import EXIF_UPRIGHT, PBC, bomb_png, exif_rotated_jpeg
from cytoreg import images
from cytoreg.images import ImageDecodeError, api_image, check_image, inspect_image, open_image
from cytoreg.tasks.samples import ImageRef

JPEG = sorted(PBC.rglob("*.jpg"))[0]


def save(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied(tmp_path):
    p = save(tmp_path, "rot.jpg", exif_rotated_jpeg())
    raw = Image.open(p)
    assert raw.size == (EXIF_UPRIGHT[1], EXIF_UPRIGHT[0])  # stored sideways
    img = open_image(p)
    assert img.size == EXIF_UPRIGHT and img.mode == "RGB"
    w, h = EXIF_UPRIGHT
    arr = np.asarray(img).astype(int)
    left, right = arr[:, : w // 2 - 2].mean(axis=(0, 1)), arr[:, w // 2 + 2:].mean(axis=(0, 1))
    assert left[0] > 180 and left[2] < 60 and right[2] > 180 and right[0] < 60  # red left, blue right
    # what the stored pixels would give without the transpose: red on top, blue below
    stored = np.asarray(raw.convert("RGB")).astype(int)
    assert stored[: w // 2 - 2].mean(axis=(0, 1))[2] > 180
    info = inspect_image(p)
    assert info.oriented and info.api_form({"image/jpeg"}) == "png: EXIF orientation applied"


def test_modes_become_rgb_with_the_right_pixels(tmp_path):
    grey = np.asarray(Image.open(JPEG).convert("L"))
    # 16-bit: scaled by the image's maximum to 8 bits
    p16 = save(tmp_path, "g16.png", encoded(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"))
    assert Image.open(p16).mode == "I;16"
    got = np.asarray(open_image(p16))
    g = grey.astype(np.float64) * 257
    want = np.round(g / g.max() * 255).astype(np.uint8)
    assert got.shape == grey.shape + (3,) and np.array_equal(got[..., 0], want)
    # CMYK JPEG → RGB close to the source
    rgb = Image.open(JPEG).convert("RGB")
    pc = save(tmp_path, "c.jpg", encoded(rgb.convert("CMYK"), "JPEG", quality=95))
    assert Image.open(pc).mode == "CMYK"
    diff = np.abs(np.asarray(open_image(pc)).astype(int) - np.asarray(rgb).astype(int)).mean()
    assert diff < 8
    # alpha is composited onto white, not dropped to whatever colour hides under it
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (10, 200, 30, 255))
    pa = save(tmp_path, "a.png", encoded(rgba, "PNG"))
    out = open_image(pa)
    assert out.getpixel((0, 0)) == (10, 200, 30) and out.getpixel((3, 3)) == (255, 255, 255)
    la = save(tmp_path, "la.png", encoded(Image.new("LA", (2, 2), (0, 0)), "PNG"))
    assert open_image(la).getpixel((1, 1)) == (255, 255, 255)
    pal = Image.new("P", (2, 2), 0)
    pal.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pp = save(tmp_path, "p.png", encoded(pal, "PNG", transparency=0))
    assert open_image(pp).getpixel((0, 0)) == (255, 255, 255) and open_image(pp).getpixel((1, 1)) == (200, 0, 0)
    assert inspect_image(pp).api_form({"image/png"}) == "png: mode P converted to RGB"


def test_each_failure_names_the_file_and_the_reason(tmp_path):
    good = JPEG.read_bytes()
    cases = {
        "zero.jpg": (b"", "does not decode: empty file (0 bytes)"),
        "trunc.jpg": (good[: len(good) // 2], "does not decode: image file is truncated"),
        "text.jpg": (b"this is not an image", "does not decode: not a known image format, or its header is damaged"),
    }
    a, b = len(good) // 3, 2 * len(good) // 3
    garbled = good[:a] + np.random.RandomState(0).bytes(b - a) + good[b:]
    cases["garbled.jpg"] = (garbled, "does not decode: ")
    for name, (data, reason) in cases.items():
        p = save(tmp_path, name, data)
        msg = check_image(p)
        assert msg is not None and msg.startswith(f"{p}: {reason}"), msg
        assert "BytesIO" not in msg
        with pytest.raises(ImageDecodeError) as err:
            open_image(p)
        assert str(err.value) == msg
    missing = tmp_path / "nope.jpg"
    assert check_image(missing) == f"{missing}: missing file: no such file"
    link = tmp_path / "link.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    assert check_image(link) == f"{link}: missing file: dangling symlink to {tmp_path / 'gone.jpg'}"
    # a loader-backed image (npz, TSV) is named by its description
    ref = ImageRef(loader=lambda: b"\x89PNG\r\n\x1a\nbroken", description="bench.tsv:7 image")
    assert check_image(ref).startswith("bench.tsv:7 image: does not decode: ")


def test_truncation_is_caught_even_when_someone_allowed_truncated_images(tmp_path):
    good = JPEG.read_bytes()
    p = save(tmp_path, "t.jpg", good[: len(good) // 2])
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        Image.open(p).load()  # PIL alone now pads the missing half with grey
        assert "truncated" in check_image(p)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    p = save(tmp_path, "bomb.png", bomb_png())
    assert p.stat().st_size < 200_000
    t0 = time.perf_counter()
    msg = check_image(p)
    assert time.perf_counter() - t0 < 1.0  # refused before 400 M pixels are decoded
    assert msg.startswith(f"{p}: too large: ") and "CYTOREG_MAX_IMAGE_PIXELS" in msg
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # a library switched PIL's guard off: ours holds
    assert check_image(p).startswith(f"{p}: too large: 20000×20000 = 400,000,000 pixels")
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    small = save(tmp_path, "s.png", encoded(Image.new("RGB", (11, 10)), "PNG"))
    assert check_image(small).startswith(f"{small}: too large: 11×10 = 110 pixels is more than the limit of 100")


def test_what_an_api_is_sent(tmp_path):
    data = JPEG.read_bytes()
    sent, mime, form = api_image(data, "x.jpg", {"image/jpeg", "image/png"})
    assert (sent, mime, form) == (data, "image/jpeg", "original")  # byte for byte
    tif = encoded(Image.open(JPEG), "TIFF")
    sent, mime, form = api_image(tif, "x.tif", {"image/jpeg", "image/png"})
    assert mime == "image/png" and form == "png: image/tiff not accepted"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(sent))), np.asarray(Image.open(JPEG).convert("RGB")))
    with pytest.raises(ImageDecodeError, match=r"^x\.jpg: does not decode: image file is truncated"):
        api_image(data[:3000], "x.jpg", {"image/jpeg"})
