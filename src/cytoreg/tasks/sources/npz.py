"""MedMNIST-style ``.npz``: ``<split>_images`` (N, H, W[, C]) and ``<split>_labels`` (N, 1).

The file is opened memory-mapped where numpy allows it; images are encoded to PNG only when
a sample is read. ``allow_pickle`` stays off.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from cytoreg.errors import DataError
from cytoreg.tasks.samples import ImageRef, Sample, png_bytes
from cytoreg.tasks.sources.base import Source


class NpzSource(Source):
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["file"],
        "properties": {
            "root": {"type": "string"},
            "file": {"type": "string", "description": "the .npz file (relative to root)"},
            "split": {"enum": ["train", "val", "test"]},
            "class_names": {"type": "array", "items": {"type": "string"},
                            "description": "label string for class index 0, 1, ..."},
        },
    }

    def samples(self) -> Iterator[Sample]:
        f = Path(self.options["file"]).expanduser()
        if not f.is_absolute() and self.options.get("root"):
            f = self.require_root() / f
        if not f.exists():
            raise DataError(f"npz file for task '{self.task.name}' not found: looked for {f} "
                            f"(data.file in {self.task.path}). Download: {self.task.get('download_url', '(none given)')}"
                            + (f", or run `cytoreg data fetch {self.task.name}`" if self.task.get("download") else ""))
        split = self.options.get("split", "test")
        if not zipfile.is_zipfile(f):  # numpy would call any other file "pickled data" and suggest allow_pickle
            raise DataError(f"{f}: not an .npz (zip) archive: a truncated or wrong download; delete it and run "
                            f"`cytoreg data fetch {self.task.name}`" if self.task.get("download") else
                            f"{f}: not an .npz (zip) archive: a truncated or wrong download; delete it and get it again")
        try:
            data = np.load(f, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{f}: not a readable .npz file ({exc}); delete it and get it again") from exc
        ik, lk = f"{split}_images", f"{split}_labels"
        if ik not in data or lk not in data:
            raise DataError(f"{f}: keys {ik!r} and {lk!r} expected, found {sorted(data.files)}")
        images, labels = data[ik], data[lk].reshape(len(data[lk]), -1)[:, 0]
        names = self.options.get("class_names") or self.task.get("labels")
        for i in range(len(labels)):
            k = int(labels[i])
            if names is None or k >= len(names):
                raise DataError(f"{f}: {lk}[{i}] = {k} has no name in data.class_names of {self.task.path}")

            def load(i: int = i) -> bytes:
                from PIL import Image

                return png_bytes(Image.fromarray(np.asarray(images[i])))

            yield Sample(id=f"{split}/{i}", label=names[k], image=ImageRef(loader=load, description=f"{f}[{ik}][{i}]"),
                         meta={"index": i, "class_index": k})
