"""A task's requests as plain data, the common ground of every export: per sample its id, label,
the message parts in order (text, or an index into its images), the image bytes, and the
kind-specific metadata extraction needs (MCQ options)."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytoreg.errors import CytoregError

MANIFEST = "cytoreg_export.json"


@dataclass
class ExportedSample:
    id: str
    label: str
    system: str | None
    parts: list[dict]                     # {"type": "text", "text": ...} | {"type": "image", "index": k}
    images: list[bytes]
    mimes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def prompt_text(self) -> str:
        """The user turn's text parts joined (for harnesses that take one question string)."""
        return "\n".join(p["text"] for p in self.parts if p["type"] == "text")

    def data_uris(self) -> list[str]:
        return [f"data:{m};base64,{base64.b64encode(b).decode()}" for b, m in zip(self.images, self.mimes)]


@dataclass
class Exported:
    task: str
    setting: str
    spec_data: dict
    spec_hash: str
    kind: str
    labels: list[str]
    samples: list[ExportedSample]
    limit: int | None = None
    kind_class: str = ""               # "module:Class" of the task kind (rebuilt by harness-side scorers)

    def manifest(self, harness: str) -> dict:
        from cytoreg import __version__

        return {"harness": harness, "task": self.task, "setting": self.setting, "kind": self.kind,
                "spec_hash": self.spec_hash, "cytoreg": __version__, "labels": self.labels, "limit": self.limit,
                "kind_class": self.kind_class,
                "sample_ids": [s.id for s in self.samples]}


def resolve_view(task: str, include: list[str] | None = None):
    """The task kind for ``task``: a task name, or a view of one (``wbcatt.cell_size``)."""
    from cytoreg.registry.builtins import TASK_KINDS
    from cytoreg.registry.catalog import Catalog
    from cytoreg.tasks.folder_task import looks_like_data, task_or_folder

    catalog = Catalog.load(include or [])
    if task in catalog.tasks or looks_like_data(task):  # a name, or ./my_cells / a CSV as `eval --tasks` takes
        top = task_or_folder(catalog, task)
        task = top.name
    else:
        top = catalog.task(task.split(".", 1)[0])
    views = {s.name: k for s, k in TASK_KINDS.get(top.get("kind"))(top).expand()}
    if task not in views:
        raise CytoregError(f"task '{task}': pick one of its views: {', '.join(views)}")
    return views[task]


def export_task(task: str, setting: str = "zero_shot", include: list[str] | None = None,
                limit: int | None = None) -> Exported:
    """The task's test split exactly as ``cytoreg eval`` would request it from a generative model."""
    kind = resolve_view(task, include)
    kind.check_model("export", "generator")
    settings = kind.settings_for("generator")
    if setting not in settings:
        raise CytoregError(f"task '{task}' has no setting '{setting}' for generative models; it has "
                           f"{', '.join(settings)}")
    prep = kind.prepare(limit)
    fewshot = kind.fewshot_examples(prep) if setting == "few_shot" else []
    if setting == "few_shot" and not fewshot:
        raise CytoregError(f"task '{task}': the few-shot pool is empty; lower sampling.test_per_class")
    samples = []
    for s in prep.test:
        req = kind.chat_request(s, setting, fewshot, {}, 0)
        system = None
        parts: list[dict] = []
        images: list[bytes] = []
        mimes: list[str] = []
        for m in req.messages:
            for p in m.parts:
                if m.role == "system":
                    system = (system or "") + p.text
                elif hasattr(p, "text"):
                    parts.append({"type": "text", "text": p.text})
                else:
                    parts.append({"type": "image", "index": len(images)})
                    images.append(p.data())
                    mimes.append(p.mime())
        req.release()
        meta = {"options": list(s.meta["options"])} if "options" in s.meta else {}
        samples.append(ExportedSample(s.id, s.label, system, parts, images, mimes, meta))
    spec = prep.spec
    return Exported(task, setting, spec.data, spec.hash, spec.get("kind"), list(prep.labels), samples, limit,
                    f"{type(kind).__module__}:{type(kind).__name__}")


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise CytoregError(f"no {MANIFEST} in {folder}; pass the folder written by `cytoreg export`")
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    from cytoreg.report.results import atomic_write

    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False))


def write_samples(ex: Exported, path: Path, images: bool = True) -> None:
    """One JSON line per sample: id, label, system, parts, images as data URIs (unless ``images``
    is false: the harness's own file holds them), meta."""
    with path.open("w", encoding="utf-8") as fh:
        for s in ex.samples:
            row = {"id": s.id, "label": s.label, "system": s.system, "parts": s.parts, "meta": s.meta}
            if images:
                row["images"] = s.data_uris()
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


@dataclass
class ExportReader:
    """An export folder read back where the dataset may be absent (inside another harness): the
    task kind rebuilt from ``task.json``, the samples (id, label, meta) from ``samples.jsonl``."""

    manifest: dict
    kind: Any
    samples: dict

    @classmethod
    def open(cls, folder: str | Path) -> "ExportReader":
        from importlib import import_module

        from cytoreg.registry.specs import Spec
        from cytoreg.tasks.samples import ImageRef, Sample

        folder = Path(folder)
        man = read_manifest(folder)
        data = json.loads((folder / "task.json").read_text(encoding="utf-8"))
        module, cls_name = man["kind_class"].split(":")
        kind = getattr(import_module(module), cls_name)(Spec("task", man["task"], data, folder / "task.json", "export"))
        samples = {}
        with (folder / "samples.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                samples[r["id"]] = Sample(r["id"], r["label"], ImageRef(description="exported"), r.get("meta") or {})
        return cls(man, kind, samples)

    def extract(self, sample_id: str, text: str) -> tuple[str | None, str]:
        ex = self.kind.extract(self.samples[str(sample_id)], text)
        return ex.label, ex.step


def extractor_for_export(folder: str | Path):
    """``(sample_id, reply) -> (label or None, step)`` with the task kind's own extraction."""
    return ExportReader.open(folder).extract
