"""Hugging Face ``datasets``: a local ``imagefolder``, a ``save_to_disk`` folder or a hub id."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cytoreg.errors import DataError
from cytoreg.tasks.samples import ImageRef, Sample
from cytoreg.tasks.sources.base import Source


class HFDatasetSource(Source):
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "root": {"type": "string", "description": "local folder (imagefolder layout or save_to_disk output)"},
            "hub_id": {"type": "string", "description": "hub dataset id, for users online"},
            "format": {"enum": ["imagefolder", "saved", "hub"]},
            "split": {"type": "string"},
            "image_column": {"type": "string"},
            "label_column": {"type": "string"},
            "label_map": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        },
    }

    def _load(self):
        try:
            import datasets
        except ImportError as exc:
            raise DataError("data.source 'hf_datasets' needs the 'datasets' package: pip install 'cytoreg[data]'") from exc
        fmt = self.options.get("format", "imagefolder")
        split = self.options.get("split", "train")
        try:
            if fmt == "hub":
                if "hub_id" not in self.options:
                    raise DataError(f"{self.task.path}: data.hub_id: needed when format is 'hub'")
                return datasets.load_dataset(self.options["hub_id"], split=split)
            root = self.require_root()
            if fmt == "saved":
                ds = datasets.load_from_disk(str(root))
                return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
            return datasets.load_dataset("imagefolder", data_dir=str(root), split=split)
        except DataError:
            raise
        except Exception as exc:  # datasets raises many exception types
            raise DataError(f"task '{self.task.name}': datasets could not load {self.options} ({type(exc).__name__}: {exc})") from exc

    def samples(self) -> Iterator[Sample]:
        ds = self._load()
        img_col = self.options.get("image_column", "image")
        lab_col = self.options.get("label_column", "label")
        feature = ds.features.get(lab_col)
        names = getattr(feature, "names", None)
        label_map = self.options.get("label_map")
        ds_img = ds.cast_column(img_col, type(ds.features[img_col])(decode=False)) if img_col in ds.features else ds
        for i in range(len(ds_img)):
            row = ds_img[i]
            raw = row[lab_col]
            raw = names[raw] if names is not None and isinstance(raw, int) else str(raw)
            keep, label = self.map_label(raw, f"{self.task.name} row {i}")
            if not keep:
                continue
            img = row[img_col]
            path = img.get("path") if isinstance(img, dict) else None
            data = img.get("bytes") if isinstance(img, dict) else None
            if data is not None:
                ref = ImageRef(loader=lambda d=data: d, description=f"{self.task.name} row {i}")
            elif path:
                ref = ImageRef(path=Path(path))
            else:
                raise DataError(f"task '{self.task.name}': row {i} has no image bytes or path in column '{img_col}'")
            sid = Path(path).name if path else f"row/{i}"
            yield Sample(id=f"{i}:{sid}", label=label, image=ref, meta={"row": i})


