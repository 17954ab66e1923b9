"""PanNuke folds (``Fold N/images/foldN/images.npy``, ``types.npy``; ``Fold N/masks/foldN/masks.npy``)
as seed B's T2 benign / malignant task, with PLIP's published rule: patches without nuclei are
dropped; *malignant* when ≥ ``min_neoplastic`` (10) neoplastic nuclei make up more than
``min_share`` (30 %) of all nuclei, *benign* when there are none; the rest are excluded (and
reported as skipped). Nuclei are the distinct non-zero instance ids of mask channels 0–4
(0 = neoplastic). Arrays are memory-mapped and read with ``allow_pickle=False``; a ``types.npy``
saved as an object array is refused with the one-line conversion to a unicode array."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from cytoreg.errors import DataError
from cytoreg.tasks.samples import ImageRef, Sample, png_bytes
from cytoreg.tasks.sources.base import Source

NUCLEUS_CHANNELS = range(5)  # Neoplastic, Inflammatory, Connective, Dead, Epithelial (5 = background)


def nuclei_counts(mask: np.ndarray) -> tuple[int, int]:
    """(neoplastic nuclei, all nuclei) of one (H, W, 6) instance mask."""
    counts = [len(np.setdiff1d(np.unique(mask[..., c]), [0])) for c in NUCLEUS_CHANNELS]
    return counts[0], sum(counts)


def binary_label(neoplastic: int, total: int, min_neoplastic: int = 10, min_share: float = 0.3) -> str | None:
    if total == 0:
        return None
    if neoplastic == 0:
        return "benign"
    if neoplastic >= min_neoplastic and neoplastic / total > min_share:
        return "malignant"
    return None


class PanNukeSource(Source):
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["root"],
        "properties": {
            "root": {"type": "string", "description": "folder holding 'Fold 1', 'Fold 2', 'Fold 3' (or Fold1...)"},
            "folds": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 3}},
            "min_neoplastic": {"type": "integer", "minimum": 1},
            "min_share": {"type": "number", "minimum": 0, "maximum": 1},
        },
    }

    def _fold_dir(self, root: Path, k: int) -> Path:
        for name in (f"Fold {k}", f"Fold{k}", f"fold_{k}", f"fold{k}"):
            if (root / name).is_dir():
                return root / name
        raise DataError(f"task '{self.task.name}': no folder 'Fold {k}' under {root} (unzip fold_{k}.zip there; "
                        f"download: {self.task.get('download_url', '(none given)')})")

    def samples(self) -> Iterator[Sample]:
        root = self.require_root()
        for k in self.options.get("folds", [1, 2, 3]):
            d = self._fold_dir(root, k)
            files = {}
            for what, sub in (("images", "images"), ("types", "images"), ("masks", "masks")):
                hits = sorted(d.glob(f"{sub}/*/{what}.npy")) or sorted(d.glob(f"**/{what}.npy"))
                if not hits:
                    raise DataError(f"{d}: {what}.npy not found (expected {sub}/fold{k}/{what}.npy)")
                files[what] = hits[0]
            images = np.load(files["images"], mmap_mode="r", allow_pickle=False)
            masks = np.load(files["masks"], mmap_mode="r", allow_pickle=False)
            types = self._types(files["types"])
            if not (len(images) == len(masks) == len(types)):
                raise DataError(f"{d}: images ({len(images)}), masks ({len(masks)}) and types ({len(types)}) "
                                "differ in length")
            for i in range(len(images)):
                neo, total = nuclei_counts(np.asarray(masks[i]))
                label = binary_label(neo, total, int(self.options.get("min_neoplastic", 10)),
                                     float(self.options.get("min_share", 0.3)))
                where = f"{files['images']}[{i}]"
                if label is None:
                    self.skip(where, "no nuclei" if total == 0 else
                              f"{neo} neoplastic of {total} nuclei: neither benign nor malignant by the rule",
                              "no_target")
                    continue

                def load(i: int = i, images=images) -> bytes:
                    from PIL import Image

                    return png_bytes(Image.fromarray(np.asarray(images[i]).astype(np.uint8)))

                tissue = re.sub(r"[_-]", " ", str(types[i])).lower()
                yield Sample(id=f"fold{k}/{i}", label=label, image=ImageRef(loader=load, description=where),
                             meta={"tissue": tissue, "neoplastic": neo, "nuclei": total, "fold": k})

    @staticmethod
    def _types(path: Path) -> np.ndarray:
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:  # an object array of str: the one case that needs pickle, refused here
            raise DataError(f"{path} is an object array; convert it once with numpy "
                            "(np.save(p, np.load(p, allow_pickle=True).astype(str))) — cytoreg never unpickles") from exc
