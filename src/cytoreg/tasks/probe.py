"""The ``probe`` task kind: a head trained on frozen image features.

Train / val / test come from the engine's seeded per-class sampling of ``data``
(``sampling.train_per_class``, ``val_per_class``, ``test_per_class``). Each entry of ``test_sets``
is an external test set (seed A: train on Acevedo, test on MLL23; seed B: NCT-CRC-HE-100K →
CRC-VAL-HE-7K) and runs as its own view ``<task>.<set>`` with the head trained on this task's
data. With ``test_per_class: 0`` only the external views run. Each feature key of the model
(final embedding, or layer × pooling) gives its own evaluation, setting ``probe`` (one key) or
``probe:<key>``; ``probe.n_per_class`` / ``probe.fractions`` add label-efficiency curves.

A probe task whose ``settings`` list ``probe`` (a folder of your own images, ``folder_task``) also
asks generators zero-/few-shot, scores CLIP embedders zero-shot as well as probing them, and
takes baselines, all on the one test split; without it, generators are asked zero-shot only."""
from __future__ import annotations

import re
from typing import Any, ClassVar

from cytoreg.errors import DataError, IncompatibleError
from cytoreg.registry.specs import Spec
from cytoreg.tasks import sampling
from cytoreg.tasks.kinds import ClassificationKind, PreparedTask, source_stream

PROBE_METRICS = ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "per_class", "confusion_matrix",
                 "auc_macro", "auc_per_class"]


class ProbeKind(ClassificationKind):
    # generators answer the test images zero-shot (fine-tuned VLMs beside the heads, ``cytoreg finetune``)
    capabilities: ClassVar[tuple[str, ...]] = ("features", "embedder", "generator")

    def __init__(self, spec: Any, parent: "ProbeKind | None" = None):
        super().__init__(spec)
        self.parent = parent
        self.probe: dict = dict((parent.spec if parent else spec).get("probe") or {})
        self._training: sampling.Split | None = None
        self._skipped: list[dict] = []
        self._ledger = None

    def expand(self) -> list[tuple[Any, "ProbeKind"]]:
        if self.spec.get("findings") and self.parent is None and not self.spec.get("_finding"):
            return self._finding_views()
        views: list[tuple[Any, ProbeKind]] = []
        if (self.sampling.get("test_per_class", 50)) != 0:
            views.append((self.spec, self))
        for name, ts in (self.spec.get("test_sets") or {}).items():
            data = {k: v for k, v in self.spec.data.items() if k not in ("test_sets", "data", "sampling", "name")}
            data.update({"name": f"{self.spec.name}.{name}", "data": ts["data"],
                         "sampling": {"seed": self.sampling.get("seed", 42), **(ts.get("sampling") or {}),
                                      "train_per_class": 0, "val_per_class": 0, "fewshot_per_class": 0},
                         "_trained_on": self.spec.name})
            if ts.get("description"):
                data["description"] = ts["description"]
            view = Spec("task", data["name"], data, self.spec.path, self.spec.origin, self.spec.chain)
            views.append((view, ProbeKind(view, parent=self)))
        if not views:
            raise IncompatibleError(f"task '{self.spec.name}': sampling.test_per_class is 0 and there are no "
                                    f"test_sets, so nothing would be tested; fix {self.spec.path}")
        return views

    def _finding_views(self) -> list[tuple[Any, "ProbeKind"]]:
        """Multi-label tasks (PadChest): one binary view per finding, absent / present, each sampled
        per stratum and probed one-vs-rest; the group reports the mean AUC (seed B's macro AUC)."""
        out = []
        for finding in self.spec.get("findings"):
            slug = re.sub(r"[^a-z0-9]+", "-", finding.lower()).strip("-")
            data = {k: v for k, v in self.spec.data.items() if k not in ("findings", "name", "labels", "data")}
            data.update({"name": f"{self.spec.name}.{slug}", "labels": ["absent", "present"], "_finding": finding,
                         "_group": self.spec.name,
                         "data": {**self.spec.get("data"), "label_from_list": {
                             **(self.spec.get("data").get("label_from_list") or {}), "value": finding}}})
            view = Spec("task", data["name"], data, self.spec.path, self.spec.origin, self.spec.chain)
            out += ProbeKind(view).expand()
        return out

    @property
    def offers_all(self) -> bool:
        """``settings`` lists ``probe``: every capability runs on this task (see the module doc)."""
        return "probe" in ((self.parent.spec if self.parent else self.spec).get("settings") or [])

    def settings_for(self, capability: str) -> list[str]:
        if not self.offers_all:
            return ["zero_shot"] if capability == "generator" else ["probe"]
        wanted = list(self.spec.get("settings"))
        if capability == "generator":
            return [s for s in wanted if s in ("zero_shot", "few_shot")] or ["zero_shot"]
        if capability == "baseline":
            return ["zero_shot"]
        clip = ["zero_shot"] if capability == "embedder" and "zero_shot" in wanted and "clip" in self.prompts else []
        return clip + ["probe"]

    def check_model(self, model_name: str, capability: str) -> None:
        if self.offers_all and capability == "baseline":
            return
        if capability == "generator":
            if "zero_shot" not in self.prompts:
                raise IncompatibleError(f"task '{self.spec.name}' (probe) has no prompts.zero_shot, so generative "
                                        f"model '{model_name}' cannot be asked; add the prompt to {self.spec.path}")
            return
        if capability not in self.capabilities:
            raise IncompatibleError(f"task '{self.spec.name}' (probe) needs frozen image features, but model "
                                    f"'{model_name}' is a {capability} model; use a features or embedder model "
                                    f"(e.g. dinobloom-s, dinov2-s, clip-vit-b32), or a generative one")

    def training_split(self) -> sampling.Split:
        """The train / val (and in-domain test) split of this task's data, drawn once."""
        if self.parent is not None:
            return self.parent.training_split()
        if self._training is None:
            stream, source = source_stream(self.spec, self.labels)
            self._training = sampling.draw(stream, self.labels, self.sampling)
            self._skipped, self._ledger = source.skipped, source.ledger
            if not self._training.train:
                raise DataError(f"task '{self.spec.name}': no training images (sampling.train_per_class is "
                                f"{self.sampling.get('train_per_class', 0)}, and {len(self._training.test)} images "
                                f"went to the test split first); adjust sampling in {self.spec.path}")
        return self._training

    def prepare(self, limit: int | None = None) -> PreparedTask:
        train = self.training_split()
        if self.parent is None:
            split = sampling.Split(test=list(train.test), train=list(train.train), val=list(train.val),
                                   shortfalls=list(train.shortfalls),
                                   fewshot=list(train.fewshot) if self.offers_all else [])  # generators' examples
            skipped, ledger = self._skipped, self._ledger
        else:
            stream, source = source_stream(self.spec, self.labels)
            ext = sampling.draw(stream, self.labels, self.sampling)
            split = sampling.Split(test=ext.test, train=list(train.train), val=list(train.val),
                                   shortfalls=ext.shortfalls)
            skipped, ledger = source.skipped, source.ledger
        if not split.test:
            raise DataError(f"task '{self.spec.name}': no test samples with any of the task's labels under "
                            f"{self.spec.get('data', {}).get('root')}; check data.label_map in {self.spec.path}")
        if limit:
            split.test = sampling.limit_stratified(split.test, limit)
        return PreparedTask(self.spec, self.labels, split, skipped, self, ledger)

    def metric_names(self) -> list[str]:
        return list(self.spec.get("metrics") or PROBE_METRICS)
