"""Image checks are remembered by file identity: a rerun decodes nothing, a changed file is decoded
again, a failure is never remembered, and a damaged cache file is ignored."""
import shutil
from pathlib import Path

import cytoreg
from cytoreg import image_check_cache, images

PBC = Path(cytoreg.__file__).parent / "demo_data/pbc/PBC_dataset_normal_DIB"


def test_rerun_decodes_nothing_and_changed_or_bad_files_are_checked_again(tmp_path, monkeypatch):
    files = sorted(PBC.rglob("*.jpg"))[:12]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    items = {f.name: tmp_path / f.name for f in files}
    first = images.inspect_many(items)
    assert all(i.error is None for i in first.values())
    decoded = []
    real = images.inspect_image
    monkeypatch.setattr(images, "inspect_image", lambda src, name=None: decoded.append(src) or real(src, name))
    again = images.inspect_many(items)
    assert decoded == [] and again == first  # from the cache, field for field
    (tmp_path / files[0].name).write_bytes(b"not an image")  # changed: size and mtime differ
    third = images.inspect_many(items)
    assert decoded == [tmp_path / files[0].name] and third[files[0].name].error
    decoded.clear()
    assert images.inspect_many(items)[files[0].name].error and decoded == [tmp_path / files[0].name]  # not remembered
    image_check_cache._path().write_text("{ damaged")
    decoded.clear()
    assert images.inspect_many(items) == third and len(decoded) == len(items)
