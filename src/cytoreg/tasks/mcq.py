"""The ``mcq`` task kind (NEJM Image Challenge): case text + image + numbered options.

Each sample carries its own options; the label set is the option numbers ("1".."5"). The
shots are fixed cases (by default the oldest ``prompts.mcq.shots`` by date, as in seed B) and
are never tested. Replies are read against that sample's option texts, numbers and letters
(answers.OptionReader). Accuracy is also reported per difficulty stratum: the share of human
readers who chose the right answer, cut into equal intervals."""
from __future__ import annotations

from typing import Any, ClassVar

from cytoreg.answers import LETTERS, Extraction, OptionReader
from cytoreg.errors import DataError, IncompatibleError
from cytoreg.models.base import ChatRequest, ImagePart, Message, TextPart
from cytoreg.tasks import sampling
from cytoreg.tasks.kinds import PreparedTask, source_stream
from cytoreg.tasks.samples import Sample


class MCQKind:
    needs_labels: ClassVar[bool] = False
    capabilities: ClassVar[tuple[str, ...]] = ("generator", "baseline")

    def __init__(self, spec: Any):
        self.spec = spec
        self.mcq: dict = (spec.get("prompts") or {}).get("mcq") or {}
        self.n_options = int(self.mcq.get("n_options", 5))
        self.labels = [str(i + 1) for i in range(self.n_options)]

    def expand(self):
        return [(self.spec, self)]

    def settings_for(self, capability: str) -> list[str]:
        return list(self.spec.get("settings") or ["few_shot"]) if capability == "generator" else ["zero_shot"]

    def check_model(self, model_name: str, capability: str) -> None:
        if capability not in self.capabilities:
            raise IncompatibleError(f"task '{self.spec.name}' (mcq) cannot use model '{model_name}' ({capability}): "
                                    "each case has its own options, so only generative models and baselines apply")

    def prepare(self, limit: int | None = None) -> PreparedTask:
        stream, source = source_stream(self.spec, self.labels)
        cases = sorted(stream(), key=lambda s: (s.meta.get("date_iso", ""), s.id))
        for s in cases:
            if len(s.meta["options"]) != self.n_options:
                raise DataError(f"task '{self.spec.name}', case {s.id}: {len(s.meta['options'])} options, "
                                f"expected {self.n_options} (prompts.mcq.n_options in {self.spec.path})")
        n_shots = int(self.mcq.get("shots", 2))
        split = sampling.Split(fewshot=cases[:n_shots], test=cases[n_shots:])
        if not split.test:
            raise DataError(f"task '{self.spec.name}': no cases left to test after the {n_shots} fixed shots")
        if limit:
            split.test = sampling.limit_stratified(split.test, limit)
        return PreparedTask(self.spec, self.labels, split, source.skipped, self, source.ledger)

    # -- requests ---------------------------------------------------------------------
    def case_text(self, s: Sample) -> str:
        opts = "\n".join(self.mcq.get("option", "{n}. {text}").format(n=i + 1, letter=LETTERS[i], text=t)
                         for i, t in enumerate(s.meta["options"]))
        return self.mcq["case"].format(question=s.meta["question"], options=opts)

    def fewshot_examples(self, prep: PreparedTask) -> list[Sample]:
        return list(prep.split.fewshot)

    def chat_request(self, sample: Sample, setting: str, fewshot: list[Sample], generation: dict,
                     try_index: int) -> ChatRequest:
        messages: list[Message] = []
        if self.mcq.get("system"):
            messages.append(Message("system", [TextPart(self.mcq["system"])]))
        parts: list = []
        if setting == "few_shot":
            for ex in fewshot:
                answer = ex.meta["options"][int(ex.label) - 1]
                parts += [ImagePart(ex.image),
                          TextPart(self.case_text(ex) + self.mcq.get("example_answer", " {answer}\n").format(
                              answer=answer, n=ex.label))]
        parts += [ImagePart(sample.image), TextPart(self.case_text(sample))]
        messages.append(Message("user", parts))
        return ChatRequest(messages, generation, try_index)

    # -- answers ----------------------------------------------------------------------
    def extract(self, sample: Sample, text: str) -> Extraction:
        """The option a reply chose (answers.OptionReader): explicit markers ("C", "(C)", "Answer: 3",
        "the answer is C", a last line "C. Sarcoidosis") or one option's text; two options → invalid."""
        return OptionReader(sample.meta["options"]).extract(text)

    def judge_prompt(self, sample: Sample) -> str:
        """Answer cleaning for MCQ: the judge names the option number the reply chose."""
        from cytoreg.engine.judge import NA

        if (self.spec.get("prompts") or {}).get("judge"):
            return self.spec.get("prompts")["judge"]
        opts = "\n".join(f"    {i + 1}. {t}" for i, t in enumerate(sample.meta["options"]))
        return ("Chatbot answered: {answer}\nWhich of the options listed below did the chatbot's answer choose? "
                f"Write just the option number and nothing else:\n    {NA}\n{opts}")

    def metric_names(self) -> list[str]:
        return list(self.spec.get("metrics") or ["accuracy", "invalid_rate"])

    def extra_metrics(self, prep: PreparedTask, records: list[dict], setting: str = "") -> dict[str, Any]:
        """Accuracy (top-1 and any-of-k) per human-difficulty stratum."""
        bins = int(self.mcq.get("difficulty_bins", 5))
        by_id: dict[str, list[dict]] = {}
        for r in records:
            if not r.get("error"):  # an error is no answer: the case counts where it was answered
                by_id.setdefault(r["id"], []).append(r)
        rated = [s for s in prep.test if s.meta.get("human_correct_pct") is not None and s.id in by_id]
        strata: list[dict] = []
        for b in range(bins):
            lo, hi = 100 * b / bins, 100 * (b + 1) / bins
            last = b == bins - 1  # the top interval is closed: 100 % belongs to it
            members = [s for s in rated if lo <= s.meta["human_correct_pct"] < hi or (last and s.meta["human_correct_pct"] == hi)]
            row: dict[str, Any] = {"range": [lo, hi], "n": len(members), "accuracy": None, "accuracy_any": None}
            if members:
                top1 = [any(r["correct"] for r in by_id[s.id] if r["try"] == 0) for s in members]
                anyk = [any(r["correct"] for r in by_id[s.id]) for s in members]
                row.update(accuracy=sum(top1) / len(members), accuracy_any=sum(anyk) / len(members),
                           human_mean_pct=sum(s.meta["human_correct_pct"] for s in members) / len(members))
            strata.append(row)
        return {"accuracy_by_difficulty": strata}
