"""The ``explain`` task kind (seed A's explainability protocol), two settings:

- ``features``: classify, then score the spec's morphological features (sum 100). The label is
  taken from the first line (as the seed) or the rules; the scores are parsed per sample
  (``feature_scores``, renormalised when they do not sum to 100, and flagged) and averaged per
  predicted class over correctly classified cells, as in the seed's Fig. 4A.
- ``free_text``: classify and explain, incl. how certain the model is. Confidence is read on the
  seed's 1–5 scale (1 very confident … 5 very unconfident) by rules, then (with ``--judge``) by
  the judge for the replies the rules could not read, cached. Reported: the correlation of
  confidence level with correctness (positive = surer when right) and mean ± SD of the
  confidence for correct and wrong answers, the seed's table.

The expert-review round trip (blinded sheet out, ratings in) is :mod:`cytoreg.report.review`."""
from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from cytoreg.answers import Extraction
from cytoreg.errors import IncompatibleError
from cytoreg.explain import parse_confidence, parse_feature_scores
from cytoreg.metrics.statistics import pearson
from cytoreg.models.base import ChatRequest, ImagePart, Message, TextPart
from cytoreg.tasks.kinds import ClassificationKind, PreparedTask
from cytoreg.tasks.samples import Sample

PROMPT_KEYS = {"features": "explain_features", "free_text": "explain_text"}
CONFIDENCE_JUDGE = ("Chatbot answered: {answer}\nHow certain was the chatbot about its classification? Write just one "
                    "number and nothing else: 1 (very confident), 2 (confident), 3 (neutral), 4 (not confident), "
                    "5 (very unconfident). If the answer does not say, write NA.")


class ExplainKind(ClassificationKind):
    capabilities: ClassVar[tuple[str, ...]] = ("generator",)

    def settings_for(self, capability: str) -> list[str]:
        wanted = [s for s in (self.spec.get("settings") or ["features", "free_text"]) if s in PROMPT_KEYS]
        return wanted or ["features", "free_text"]

    def check_model(self, model_name: str, capability: str) -> None:
        if capability != "generator":
            raise IncompatibleError(f"task '{self.spec.name}' (explain) asks for explanations in text; model "
                                    f"'{model_name}' is a {capability} model")
        for setting in self.settings_for(capability):
            if PROMPT_KEYS[setting] not in self.prompts:
                raise IncompatibleError(f"task '{self.spec.name}': setting {setting} needs prompts."
                                        f"{PROMPT_KEYS[setting]} in {self.spec.path}")
        if "features" in self.settings_for(capability) and not (self.spec.get("explain") or {}).get("features"):
            raise IncompatibleError(f"task '{self.spec.name}': setting features needs explain.features in {self.spec.path}")

    @property
    def features(self) -> list[str]:
        return list((self.spec.get("explain") or {}).get("features") or [])

    def chat_request(self, sample: Sample, setting: str, fewshot: list[Sample], generation: dict,
                     try_index: int) -> ChatRequest:
        messages: list[Message] = []
        if self.prompts.get("system"):
            messages.append(Message("system", [TextPart(self.prompts["system"])]))
        messages.append(Message("user", [TextPart(self.prompts[PROMPT_KEYS[setting]]), ImagePart(sample.image)]))
        return ChatRequest(messages, generation, try_index)

    def extract(self, sample: Sample, text: str) -> Extraction:
        """The label on the first line (the seed's reading), else the usual rules on the whole reply."""
        if self._extractor is None:
            self._extractor = self.extractor()
        first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
        hit = self._extractor.extract(first) if first else None
        if hit is not None and hit.label:
            return Extraction(hit.label, "first_line" if hit.step in ("exact", "alias") else hit.step, hit.detail)
        return self._extractor.extract(text)

    # -- per-sample annotation (runs after generation, before scoring) ----------------------
    def annotate(self, prep: PreparedTask, records: list[dict], setting: str, judge=None, cache=None,
                 concurrency: int | None = None) -> dict[str, int]:
        usage: dict[str, int] = {}
        for r in records:
            text = r.get("response") if r.get("error") is None else None
            if setting == "features":
                fs = parse_feature_scores(text or "", self.features)
                r["feature_scores"] = {k.strip(): v for k, v in fs.normalised().items()}
                r["feature_scores_raw_total"] = fs.total
                r["feature_scores_renormalised"] = fs.renormalised
                r["feature_problems"] = fs.problems
                r["other_features"] = fs.other
            elif setting == "free_text":
                level, what = parse_confidence(text or "")
                r["confidence"], r["confidence_match"] = level, ("rules: " + what) if level else ""
        if setting == "free_text" and judge is not None:
            from cytoreg.engine.judge import ask_judge

            todo = [r for r in records if r.get("confidence") is None and r.get("error") is None
                    and (r.get("response") or "").strip()]
            template = self.prompts.get("confidence_judge", CONFIDENCE_JUDGE)
            replies = ask_judge(judge, [template.replace("{answer}", r["response"]) for r in todo], cache,
                                prep.spec.name, [r["id"] for r in todo], concurrency) if todo else []
            for r, resp in zip(todo, replies):
                for k, v in (resp.usage or {}).items():
                    usage[f"judge_{k}"] = usage.get(f"judge_{k}", 0) + int(v)
                m = re.match(r"^\W*([1-5])\b", (resp.text or "").strip()) if resp.error is None else None
                if m:
                    r["confidence"], r["confidence_match"] = int(m.group(1)), f"judge: {resp.text.strip()[:40]!r}"
                else:
                    r["confidence_match"] = f"judge: {(resp.text or resp.error or '').strip()[:40]!r} (no level)"
        return usage

    # -- aggregates ------------------------------------------------------------------------
    def extra_metrics(self, prep: PreparedTask, records: list[dict], setting: str = "") -> dict[str, Any]:
        if setting == "features":
            return {"feature_importance": self._importance(records)}
        if setting == "free_text":
            return {"confidence": confidence_summary(records)}
        return {}

    def _importance(self, records: list[dict]) -> dict[str, Any]:
        """Mean ± SD (ddof 1) of each renormalised feature score over correctly classified cells,
        overall and per predicted class (the seed's Fig. 4A); counts of what could be parsed."""
        names = [f.strip() for f in self.features]
        rows = [r for r in records if r.get("try", 0) == 0 and r.get("feature_scores") is not None]
        parsed = [r for r in rows if any(v is not None for v in r["feature_scores"].values())]
        correct = [r for r in parsed if r.get("correct")]

        def table(rs: list[dict]) -> dict[str, dict]:
            out = {}
            for f in names:
                vals = np.array([r["feature_scores"][f] for r in rs if r["feature_scores"].get(f) is not None], float)
                out[f] = {"mean": float(vals.mean()) if len(vals) else None,
                          "sd": float(vals.std(ddof=1)) if len(vals) > 1 else None, "n": int(len(vals))}
            return out

        by_class = {}
        for lab in self.labels:
            rs = [r for r in correct if r["parsed"] == lab]
            if rs:
                by_class[lab] = table(rs)
        return {"n": len(rows), "n_parsed": len(parsed), "n_correct": len(correct),
                "n_renormalised": sum(1 for r in parsed if r.get("feature_scores_renormalised")),
                "n_with_problems": sum(1 for r in rows if r.get("feature_problems")),
                "correct_overall": table(correct), "correct_by_predicted_class": by_class}

    def metric_names(self) -> list[str]:
        return list(self.spec.get("metrics") or ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro",
                                                   "invalid_rate", "per_class", "confusion_matrix"])


def confidence_summary(records: list[dict]) -> dict[str, Any]:
    """Seed scale (1 very confident … 5 very unconfident): mean ± SD (ddof 1) for correct and
    wrong answers, and the Pearson correlation between confidence *level* (6 - scale, so larger
    = surer) and correctness (1/0). Invalid answers count as wrong; unread confidences are left
    out and counted."""
    rows = [r for r in records if r.get("try", 0) == 0 and r.get("error") is None]
    rated = [r for r in rows if r.get("confidence") is not None]

    def stats(rs: list[dict]) -> dict[str, Any]:
        v = np.array([r["confidence"] for r in rs], float)
        return {"mean": float(v.mean()) if len(v) else None, "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
                "n": int(len(v))}

    corr = pearson([6 - r["confidence"] for r in rated], [1.0 if r.get("correct") else 0.0 for r in rated])
    steps: dict[str, int] = {}
    for r in rated:
        k = str(r.get("confidence_match", "")).split(":")[0] or "rules"
        steps[k] = steps.get(k, 0) + 1
    return {"n": len(rows), "n_rated": len(rated), "n_unread": len(rows) - len(rated), "by_source": steps,
            "corr_confidence_correct": corr, "correct": stats([r for r in rated if r.get("correct")]),
            "wrong": stats([r for r in rated if not r.get("correct")]),
            "distribution": {str(k): sum(1 for r in rated if r["confidence"] == k) for k in range(1, 6)}}
