"""Answer extraction: free text → one label of a closed set, or ``None`` (invalid).

Steps, in order, each recorded per sample: ``exact`` (the reply is the label), ``alias``
(the reply is an alias from the spec), ``answer_line`` (the same two on the text after the
last "Answer:"), ``contains`` (exactly one label — after discarding labels nested inside a
longer matched one — appears as whole words), ``fuzzy`` (the whole reply is a near-spelling
of exactly one label), optional ``judge`` (a model maps the reply; cached like any request),
else ``invalid``. Two different labels named → invalid: nothing is guessed.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Sequence

_WRAP = " \t\r\n*_`\"'.:;!()[]{}#>-"


@dataclass
class Extraction:
    label: str | None
    step: str
    detail: str = ""


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s/-]", " ", text)
    text = re.sub(r"[\s_]+", " ", text)
    return text.strip(" -")


def _strip(text: str) -> str:
    return text.strip(_WRAP)


class AnswerExtractor:
    def __init__(self, labels: Sequence[str], aliases: dict[str, list[str]] | None = None,
                 judge: Callable[[str], str | None] | None = None, fuzzy_cutoff: float = 0.88):
        self.labels = list(labels)
        self.judge = judge
        self.fuzzy_cutoff = fuzzy_cutoff
        self.names: dict[str, str] = {}  # normalised surface form → label
        for lab in self.labels:
            self.names[normalise(lab)] = lab
        for lab, alist in (aliases or {}).items():
            for a in alist:
                self.names.setdefault(normalise(a), lab)
        self._exact = {lab.strip(): lab for lab in self.labels}
        self._ci = {lab.strip().lower(): lab for lab in self.labels}

    def _whole(self, text: str) -> Extraction | None:
        t = _strip(text)
        if t in self._exact:
            return Extraction(self._exact[t], "exact")
        if t.lower() in self._ci:
            return Extraction(self._ci[t.lower()], "exact")
        n = normalise(t)
        if n in self.names:
            lab = self.names[n]
            return Extraction(lab, "exact" if n == normalise(lab) else "alias")
        return None

    def _contains(self, text: str) -> Extraction | None:
        n = f" {normalise(text)} "
        hits = [(form, lab) for form, lab in self.names.items() if form and f" {form} " in n]
        if not hits:
            return None
        # drop forms nested in a longer matched form ("adenocarcinoma" inside "adenocarcinoma of ...")
        forms = [f for f, _ in hits]
        kept = {lab for f, lab in hits if not any(f != g and f" {f} " in f" {g} " for g in forms)}
        if len(kept) == 1:
            return Extraction(kept.pop(), "contains")
        return Extraction(None, "invalid", "several labels named: " + ", ".join(sorted(kept)))

    def extract(self, text: str | None) -> Extraction:
        if text is None or not text.strip():
            return Extraction(None, "invalid", "empty reply")
        hit = self._whole(text)
        if hit:
            return hit
        m = list(re.finditer(r"answer\s*[:：]", text, flags=re.IGNORECASE))
        if m:
            tail = text[m[-1].end():].strip().splitlines()[0] if text[m[-1].end():].strip() else ""
            hit = self._whole(tail) or (self._contains(tail) if tail else None)
            if hit and hit.label:
                return Extraction(hit.label, "answer_line")
        first_line = _strip(text.strip().splitlines()[0])
        hit = self._whole(first_line)
        if hit:
            return Extraction(hit.label, "first_line")
        hit = self._contains(text)
        if hit and hit.label:
            return hit
        ambiguous = hit
        close = difflib.get_close_matches(normalise(text), list(self.names), n=2, cutoff=self.fuzzy_cutoff)
        if close and len({self.names[c] for c in close}) == 1:
            return Extraction(self.names[close[0]], "fuzzy", close[0])
        if self.judge is not None:
            judged = self.judge(text)
            if judged in self.labels:
                return Extraction(judged, "judge")
        return ambiguous or Extraction(None, "invalid", "no label found")
