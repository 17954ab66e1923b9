"""Task kinds. ``classification``: a closed label set, asked zero-/few-shot of generators,
scored by embedding similarity for embedders, guessed by baselines."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from cytoreg.answers import AnswerExtractor, Extraction
from cytoreg.errors import DataError, IncompatibleError
from cytoreg.images import ImageInfo, inspect_many
from cytoreg.models.base import ChatRequest, ImagePart, Message, TextPart
from cytoreg.registry.builtins import SOURCES
from cytoreg.tasks import sampling
from cytoreg.tasks.accounting import Ledger, accounted
from cytoreg.tasks.samples import Sample

DEFAULT_METRICS = ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "invalid_rate",
                   "per_class", "confusion_matrix", "auc_macro", "auc_per_class"]


@dataclass
class PreparedTask:
    spec: Any
    labels: list[str]
    split: sampling.Split
    skipped: list[dict] = field(default_factory=list)
    kind: Any = None
    ledger: Ledger | None = None
    #: sample id → what decoding its image found; filled once per task by :meth:`image_infos`
    images: dict[str, ImageInfo] = field(default_factory=dict, repr=False)

    @property
    def test(self) -> list[Sample]:
        return self.split.test

    def image_infos(self, samples: list[Sample] | None = None) -> dict[str, ImageInfo]:
        """Decode each image once per task (:mod:`cytoreg.images`); by default the test samples."""
        samples = self.test if samples is None else samples
        todo = {s.id: s.image for s in samples if s.id not in self.images}
        self.images.update(inspect_many(todo))
        return {s.id: self.images[s.id] for s in samples}

    def image_errors(self, samples: list[Sample] | None = None) -> dict[str, str]:
        """Sample id → message, for the samples whose image is missing, unreadable or does not decode."""
        return {sid: info.error for sid, info in self.image_infos(samples).items() if info.error}

    def without(self, ids: Any) -> "PreparedTask":
        """The same task with those test samples left out (shares the image checks)."""
        return replace(self, split=replace(self.split, test=[s for s in self.test if s.id not in ids]))

    def accounting(self) -> dict[str, Any]:
        """Every row's fate, for results.json (see :mod:`cytoreg.tasks.accounting`)."""
        ledger = self.ledger or Ledger()
        checked = {sid: self.images[sid] for sid in self.split.ids()["test"] if sid in self.images}
        return ledger.to_json(self.labels, self.split, checked)


class ClassificationKind:
    needs_labels: ClassVar[bool] = True
    capabilities: ClassVar[tuple[str, ...]] = ("generator", "embedder", "baseline")

    def __init__(self, spec: Any):
        self.spec = spec
        self.labels: list[str] = list(spec.get("labels") or [])
        self.prompts: dict = spec.get("prompts") or {}
        self.sampling: dict = spec.get("sampling") or {}
        # set on views derived by AttributesKind: sample by one column, score another
        self.target: str | None = spec.get("_target")
        self.stratify_labels: list[str] = list(spec.get("_stratify_labels") or self.labels)
        self._extractor: AnswerExtractor | None = None

    def expand(self) -> list[tuple[Any, "ClassificationKind"]]:
        """The (spec, kind) pairs this task runs as; one for a plain classification task."""
        return [(self.spec, self)]

    # -- planning --------------------------------------------------------------------
    def settings_for(self, capability: str) -> list[str]:
        wanted = list(self.spec.get("settings") or ["zero_shot"])
        if capability != "generator":
            return ["zero_shot"]
        return wanted

    def check_model(self, model_name: str, capability: str) -> None:
        if capability not in self.capabilities:
            raise IncompatibleError(f"task '{self.spec.name}' ({self.spec.get('kind')}) cannot use model "
                                    f"'{model_name}' ({capability}); it takes {', '.join(self.capabilities)} models")
        if capability == "generator" and "zero_shot" not in self.prompts:
            raise IncompatibleError(f"task '{self.spec.name}' has no prompts.zero_shot, so generative model "
                                    f"'{model_name}' cannot be asked; add the prompt to {self.spec.path}")
        if capability == "embedder" and "clip" not in self.prompts:
            raise IncompatibleError(f"task '{self.spec.name}' has no prompts.clip templates, so embedding model "
                                    f"'{model_name}' cannot classify; add them to {self.spec.path}")

    def prepare(self, limit: int | None = None) -> PreparedTask:
        stream, source = source_stream(self.spec, self.stratify_labels)
        data = source.options
        split = sampling.draw(stream, self.stratify_labels, self.sampling)
        if not split.test:
            raise DataError(f"task '{self.spec.name}': no samples with any of the task's labels were found "
                            f"under {data.get('root', data)}; check data.label_map in {self.spec.path}")
        if limit:  # before relabelling: every attribute view keeps the same images
            split.test = sampling.limit_stratified(split.test, limit)
        if self.target:
            self._relabel(split)
        return PreparedTask(self.spec, self.labels, split, source.skipped, self, source.ledger)

    def _relabel(self, split: sampling.Split) -> None:
        """Score the ``target`` column of each sampled row (the rows were drawn per stratum)."""
        allowed = set(self.labels)
        for name in ("test", "fewshot", "train", "val"):
            out = []
            for s in getattr(split, name):
                value = str(s.meta.get(self.target, "")).strip()
                if value not in allowed:
                    raise DataError(f"task '{self.spec.name}', sample {s.id}: column '{self.target}' is "
                                    f"'{value}', not one of {', '.join(self.labels)}; fix the row or add the "
                                    f"value to the attribute's labels in {self.spec.path}")
                out.append(replace(s, label=value))
            setattr(split, name, out)

    # -- generator requests ----------------------------------------------------------------
    def chat_request(self, sample: Sample, setting: str, fewshot: list[Sample], generation: dict,
                     try_index: int) -> ChatRequest:
        prompt = self.prompts["zero_shot"]
        messages: list[Message] = []
        if self.prompts.get("system"):
            messages.append(Message("system", [TextPart(self.prompts["system"])]))
        parts: list = []
        if setting == "few_shot":
            fs = self.prompts["few_shot"]
            for old, new in fs.get("rewrites", []):
                prompt = prompt.replace(old, new)
            for ex in fewshot:
                text = TextPart(fs["example"].format(label=ex.label))
                img = ImagePart(ex.image)
                parts += [text, img] if fs.get("text_position", "before_image") == "before_image" else [img, text]
        parts += [TextPart(prompt), ImagePart(sample.image)]
        messages.append(Message("user", parts))
        return ChatRequest(messages, generation, try_index)

    def fewshot_examples(self, prepared: PreparedTask) -> list[Sample]:
        """One example per class (the first of each class in the few-shot pool whose image
        decodes), in label order."""
        first: dict[str, Sample] = {}
        bad = prepared.image_errors(prepared.split.fewshot)
        for s in prepared.split.fewshot:
            if s.id not in bad:
                first.setdefault(s.label, s)
        return [first[lab] for lab in self.labels if lab in first]

    def extractor(self, judge=None) -> AnswerExtractor:
        return AnswerExtractor(self.labels, self.spec.get("aliases"), judge=judge)

    def extract(self, sample: Sample, text: str) -> Extraction:
        if self._extractor is None:
            self._extractor = self.extractor()
        return self._extractor.extract(text)

    def judge_prompt(self, sample: Sample) -> str:
        """The answer-cleaning prompt for ``--judge`` (``{answer}`` is replaced by the reply)."""
        from cytoreg.engine.judge import default_prompt

        return self.prompts.get("judge") or default_prompt(self.labels)

    def extra_metrics(self, prep: PreparedTask, records: list[dict], setting: str = "") -> dict[str, Any]:
        """Metrics at each level of ``hierarchy`` (HiCervix): true and predicted labels mapped to
        their ancestor at that level; samples without an annotation at a level are left out of it."""
        hier = self.spec.get("hierarchy")
        if not hier:
            return {}
        from sklearn.metrics import accuracy_score, f1_score

        parents: dict[str, list] = hier["parents"]
        top1 = {r["id"]: r["parsed"] for r in records if r.get("try", 0) == 0 and not r.get("error")}
        out: dict[str, Any] = {}
        for k, level in enumerate(hier["levels"]):
            y, p = [], []
            for s in prep.test:
                truth = parents[s.label][k]
                if truth is None or s.id not in top1:  # no annotation at this level, or no reply
                    continue
                pred = top1.get(s.id)
                y.append(truth)
                p.append("(invalid)" if pred is None else (parents[pred][k] or "(coarser label)"))
            if y:
                out[f"accuracy_{level}"] = float(accuracy_score(y, p))
                out[f"f1_weighted_{level}"] = float(f1_score(y, p, labels=sorted(set(y)), average="weighted",
                                                            zero_division=0))
                out[f"n_{level}"] = len(y)
        return out

    # -- embedder ------------------------------------------------------------------------
    def class_prompts(self) -> list[list[str]]:
        """Per label, every template × class-name synonym (averaged into one text embedding)."""
        clip = self.prompts["clip"]
        names = clip.get("classnames") or {}
        return [[t.format(label=n) for n in names.get(lab, [lab]) for t in clip["templates"]]
                for lab in self.labels]

    def metric_names(self) -> list[str]:
        return list(self.spec.get("metrics") or DEFAULT_METRICS)


def source_stream(spec: Any, labels: list[str] | None = None):
    """(a function streaming the task's samples afresh on each call, the first pass's source).

    Sampling reads the data twice (ids first, then the chosen samples) so that memory does not
    grow with each row's metadata; the first pass accounts for every row in ``source.ledger``:
    given ``labels``, rows with another label are dropped (an error unless the spec says
    ``on_unknown_label: skip``) and repeated ids counted (an error when their labels differ)."""
    data = dict(spec.get("data"))
    cls = SOURCES.get(data.pop("source"))
    first = cls(dict(data), spec)
    calls = [0]

    def fresh():
        return cls(dict(data), spec).samples()

    def stream():
        calls[0] += 1
        if calls[0] > 1:
            return fresh()
        if labels is None:
            return first.samples()
        return accounted(first.samples(), labels, spec.get("on_unknown_label") or "error", first.ledger, spec, fresh)

    return stream, first


def zero_shot_scores(image_emb: np.ndarray, class_emb: np.ndarray, logit_scale: float) -> np.ndarray:
    """Softmax over labels of logit_scale × cosine similarity (inputs L2-normalised)."""
    logits = logit_scale * image_emb @ class_emb.T
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def class_embeddings(embedder, prompts: list[list[str]]) -> np.ndarray:
    """Mean of the normalised embeddings of each label's prompts, re-normalised (order-invariant)."""
    out = []
    for texts in prompts:
        e = np.asarray(embedder.encode_texts(texts), dtype=np.float64)
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        m = e.mean(axis=0)
        out.append(m / np.linalg.norm(m))
    return np.stack(out)
