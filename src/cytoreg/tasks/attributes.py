"""The ``attributes`` task kind (WBCAtt): several closed label sets asked of the same images.

Each attribute runs as its own classification view (``<task>.<attribute>``): rows are drawn
once per stratum (``labels``, e.g. the cell type, seeded exactly as a classification task) so
every attribute sees the same images, then each view scores its own column. The group's
summary (mean and pooled weighted F1 over the attributes) is computed in the results."""
from __future__ import annotations

from typing import Any, ClassVar

from cytoreg.registry.specs import Spec
from cytoreg.tasks.kinds import ClassificationKind

#: task keys copied into every attribute view
SHARED_KEYS = ("description", "citation", "license", "homepage", "download_url", "layout", "data", "sampling",
               "settings", "metrics", "primary_metric", "statistics")


class AttributesKind:
    needs_labels: ClassVar[bool] = True
    capabilities: ClassVar[tuple[str, ...]] = ClassificationKind.capabilities

    def __init__(self, spec: Any):
        self.spec = spec

    def views(self) -> list[Spec]:
        spec = self.spec
        label_column = spec.get("data", {}).get("label_column", "label")
        few = (spec.get("prompts") or {}).get("few_shot")
        out = []
        for attr, a in spec.get("attributes").items():
            prompts: dict[str, Any] = {"zero_shot": a["zero_shot"]}
            if few:
                prompts["few_shot"] = {**few, "example": few["example"].replace("{attribute}", attr)}
            if "judge" in a:
                prompts["judge"] = a["judge"]
            if "clip_prefix" in a:
                prompts["clip"] = {"templates": [a["clip_prefix"] + "{label}"]}
            data = {k: spec.get(k) for k in SHARED_KEYS if spec.get(k) is not None}
            data.update({"spec": "task/v1", "name": f"{spec.name}.{attr}", "kind": "classification",
                         "labels": list(a["labels"]), "aliases": a.get("aliases") or {}, "prompts": prompts,
                         "_group": spec.name, "_attribute": attr, "_stratify_labels": list(spec.get("labels"))})
            if attr != label_column:
                data["_target"] = attr
            out.append(Spec("task", data["name"], data, spec.path, spec.origin, spec.chain))
        return out

    def expand(self) -> list[tuple[Spec, ClassificationKind]]:
        return [(v, ClassificationKind(v)) for v in self.views()]

    def check_model(self, model_name: str, capability: str) -> None:
        for _, kind in self.expand():
            kind.check_model(model_name, capability)
