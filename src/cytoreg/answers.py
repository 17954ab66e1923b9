"""Answer extraction: free text → one label of a closed set, or ``None`` (invalid).

Rules, in this order; the first that decides names the sample's ``match`` step:

``exact`` / ``alias``  the whole reply (markdown, quotes, an article stripped) is a label / alias.
``field_line``  the last "<field>: value" line — Answer, Final answer, Cell type, Diagnosis,
    Classification, Identification… in plain text, markdown bold, a heading followed by its value,
    or a two-column table row; answer fields outrank descriptive ones.
``conclusion``  the last strong conclusion ("the answer is X", "therefore X", "I would classify
    it as X").
``first_line``  the first line or first sentence is a label ("Erythroblast. Reasoning: …").
``conclusion``  the last weaker conclusion ("most consistent with X", "this appears to be X").
``contains``  exactly one label is named in the whole reply.
``fuzzy``  a short answer (the reply, a field value, the first line, a concluding clause) is a
    near-spelling of exactly one label.
``judge`` (optional, run by the engine), else ``invalid``.

A label counts as named only where it is put forward: mentions after a negation or comparison
("not a lymphocyte", "unlike a monocyte", "rather than", "larger than", "distinguished from"),
mentions questioned ("Is it a basophil?"), dismissed ("… is unlikely") or listed ("including
platelets", "for example"), and labels nested inside a longer named label ("Myelocyte" inside
"Metamyelocyte", "Neutrophil" inside "Segmented neutrophil") are set aside. Two different labels
left is a hedge → invalid; so is an answer next to an alternative it offers ("… cannot be
excluded", "could also be …"), a decisive field line or conclusion that hedges (which ends the
chain there), and a reply that says it cannot tell and names a label only in passing: nothing
is guessed.

``OptionReader`` applies the same rules to multiple-choice replies, with explicit option
markers ("C", "(C)", "C)", "Answer: C", "option 3", "the answer is C", "C. Sarcoidosis") and the
options' texts matched as whole phrases; a bare article or pronoun ("a", "I'd") or a number in
prose is never an option. Its steps: ``exact`` (a one-line reply), ``field_line``,
``conclusion`` (strong, or "C is the correct answer"), ``last_line`` / ``first_line`` (a marker
or an option standing on it, not inside a re-quoted list), ``conclusion`` (weak), ``contains``,
``marker`` (one explicit "option C" / "(C)" in prose), ``fuzzy``, else ``invalid``.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Sequence

_WRAP = " \t\r\n*_`\"'.:;!()[]{}#>-“”‘’"


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


def _unarticle(text: str) -> str:
    return re.sub(r"^(?:an?|the)\s+", "", text, flags=re.I)


# -- where a name counts as put forward ------------------------------------------------------
_FILLER = r"(?:(?:an?|the|any|typical|usual|mature|normal|classic(?:al)?|simple|just|simply|merely|true|" \
          r"definite|reactive|real|obvious|other|in|with|yet|quite|exactly|really|necessarily)\s+)"
_NEG_BEFORE = re.compile(
    r"(?:\b(?:not|nor|unlike|than|instead\s+of|opposed\s+to|excluding|exclude[sd]?|rule[sd]?\s+out|ruling\s+out|"
    r"no|without|absence\s+of|lack\s+of|cannot\s+be|can't\s+be|isn't|aren't|wasn't|compared\s+(?:to|with)|"
    r"less\s+likely|unlikely(?:\s+to\s+be)?|other\s+than|except|if\s+(?:it|this|the\s+cell)\s+(?:were|was|is)|"
    r"(?:distinguish\w*|differentiat\w*|differ\w*|different|distinct|separat\w*|tell\s+\w+\s+apart)\s+(?:\w+\s+)?from)"
    r"|(?:favou?r|prefer)\w*\b[^.;\n]{0,60}?\bover|\bas\s+\w+\s+as|\bnon-?"
    r"|\b(?:including|includes?|such\s+as|e\.g\.|for\s+example|for\s+instance)\b[^.;:\n]{0,70}?)[\s\-]*"
    + _FILLER + r"{0,2}$",
    re.I)
_NEG_AFTER = re.compile(
    r"^[\s*_\"')]*(?:\?|(?:,\s*)?(?:(?:is|are|was|were|seems|appears|would\s+be|seem)\s+)?(?:(?:very|much|far|highly|"
    r"less|quite|also|therefore)\s+)?(?:unlikely|less\s+likely|ruled\s+out|excluded|improbable)\b|"
    r"\s*(?:is|are|was|were)\s+(?:not|n't)\b|\s*(?:isn't|aren't|wasn't)\b)",
    re.I)
# a name offered as a possibility next to the answer: "… cannot be excluded", "could also be …"
_ALT_BEFORE = re.compile(r"\b(?:(?:could|might|may)\s+also\s+be|or\s+(?:possibly|perhaps|maybe)|alternatively|"
                         r"differential\s+(?:diagnosis\s+)?(?:includes?|would\s+include|:)|possibly|perhaps|maybe)"
                         r"[\s,:]*" + _FILLER + r"{0,2}$", re.I)
_ALT_AFTER = re.compile(r"^[\s*_\"')]*(?:(?:is|are)\s+)?(?:also\s+)?(?:(?:cannot|can't|can\s+not)\s+be\s+"
                        r"(?:entirely\s+)?(?:excluded|ruled\s+out)|(?:is|are)\s+(?:also\s+)?(?:possible|"
                        r"a\s+possibility|in\s+the\s+differential))", re.I)
_SEP = r"[\s\-‐‑–—/_,()'\"*]+"


def _form_pattern(surface: str) -> re.Pattern | None:
    """A whole-phrase pattern for one name: any separators between its words, plural words,
    case-insensitive except for short all-capital abbreviations (``MON``, ``LSIL``)."""
    surface = unicodedata.normalize("NFKC", surface).strip()
    abbreviation = surface.isupper() and len(surface) <= 8
    surface = re.sub(r"(?<=\w)['’]s\b", "", surface)  # "Kaposi's" also reads "Kaposi", "Kaposis"
    tokens = re.findall(r"[^\W_]+", surface)
    if not tokens:
        return None
    parts = [re.escape(t) + (r"(?:['’]?s)?" if t.isalpha() and len(t) >= 3 and not t.lower().endswith("s")
                             else r"(?:['’]s)?" if t.isalpha() and len(t) >= 3 else "")
             for t in tokens]
    return re.compile(r"(?<![^\W_])" + _SEP.join(parts) + r"(?![^\W_])", 0 if abbreviation else re.I)


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    key: str


class _Names:
    """Finds the names of a closed set in free text, set-aside mentions removed."""

    def __init__(self, forms: dict[str, str]):
        self.patterns = [(p, key) for form, key in forms.items() if (p := _form_pattern(form))]

    def _outer(self, text: str) -> list[_Hit]:
        found = {_Hit(m.start(), m.end(), key) for p, key in self.patterns for m in p.finditer(text)}
        return sorted((h for h in found if not any(o != h and o.start <= h.start and h.end <= o.end
                                                   and o.end - o.start > h.end - h.start for o in found)),
                      key=lambda h: h.start)

    def hits(self, text: str) -> list[_Hit]:
        """Mentions put forward: not negated, compared, questioned, enumerated or nested."""
        return [h for h in self._outer(text) if not _NEG_BEFORE.search(text[max(0, h.start - 80):h.start])
                and not _NEG_AFTER.match(text[h.end:h.end + 60])]

    def alternatives(self, text: str) -> set[str]:
        """Keys offered as a possibility ("X cannot be excluded", "could also be X")."""
        return {h.key for h in self._outer(text) if _ALT_BEFORE.search(text[max(0, h.start - 60):h.start])
                or _ALT_AFTER.match(text[h.end:h.end + 60])}

    def keys(self, text: str, start: int = 0, end: int | None = None) -> list[str]:
        """Distinct keys put forward within text[start:end], in order of their last mention."""
        end = len(text) if end is None else end
        order: dict[str, int] = {}
        for h in self.hits(text):
            if start <= h.start and h.end <= end:
                order[h.key] = h.start
        return sorted(order, key=order.get)


# -- reply structure: field lines and conclusions ---------------------------------------------
_FIELDS_ANSWER = r"answer|conclusion|choice|option|selected\s+option|selection|final\s+\w+(?:\s+\w+)?|most\s+likely"
_FIELDS = (r"answer|conclusion|choice|option|selected\s+option|selection|cell\s+type|cell\s+identification|"
           r"cell\s+classification|type\s+of\s+cell|cell|diagnosis|classification|class|label|prediction|"
           r"identification|category|result|impression|interpretation|finding")
_FIELD = re.compile(
    r"^[\s>*_#|•·\-]*(?:\d+[.)]\s*)?(?:\*\*|__)?\s*"
    r"(?P<field>(?:(?:my|the|your|final|overall|predicted|most\s+likely|likely|probable|best|correct|definitive|"
    r"suggested|proposed|primary)\s+)*(?:" + _FIELDS + r")s?(?:\s*\([^)]*\))?|most\s+likely)"
    r"\s*(?:\*\*|__|\*)?\s*(?:[:：=]|\s[-–—]\s)\s*(?:\*\*|__)?\s*(?P<value>.*?)\s*$", re.I)
_FIELD_HEADING = re.compile(
    r"^[\s>*_#|\-]*(?:\*\*|__)?\s*(?P<field>(?:(?:my|the|final|overall|predicted|most\s+likely|correct)\s+)*"
    r"(?:" + _FIELDS + r")s?)\s*(?:\*\*|__)?\s*[:：]?\s*(?:\*\*|__)?\s*$", re.I)
_TABLE_ROW = re.compile(r"^\s*\|([^|]+)\|([^|]+)\|\s*$")
_INLINE_ANSWER = re.compile(
    r"(?<=\S)[ \t]+(?=(?:\*\*|__)?(?:(?:my|the|final|correct)\s+)*answer\s*(?:\*\*|__)?\s*[:：])", re.I)
_NON_ANSWER = re.compile(r"^\W*(?:n/?a|none|unknown|unclear|uncertain|undetermined|indeterminate|not\s+sure|"
                         r"cannot\s+(?:be\s+)?determine[d]?|can't\s+(?:be\s+)?determine[d]?|insufficient|"
                         r"not\s+(?:possible|determinable|identifiable)|unable)\b", re.I)
_REFUSAL = re.compile(r"\b(?:i'?m\s+(?:sorry|unable|not\s+able)|i\s+am\s+(?:sorry|unable|not\s+able)|"
                      r"i\s+(?:can(?:no|')t|cannot)\s+(?:provide|help|assist|identify|determine|diagnose|make|give|"
                      r"analy[sz]e|view|see)|unable\s+to\s+(?:provide|determine|identify|diagnose|view|see|"
                      r"analy[sz]e))", re.I)
_CANNOT_TELL = re.compile(r"\b(?:can(?:no|')t|cannot|unable\s+to|not\s+(?:possible|able)\s+to|difficult\s+to|"
                          r"hard\s+to)\s+(?:\w+\s+)?(?:determine|identify|tell|say|classify|distinguish|"
                          r"be\s+(?:sure|certain)|view|see|access|analy[sz]e|process|interpret)"
                          r"|\b(?:not\s+(?:sure|certain)|unsure|uncertain)\b", re.I)

# strong conclusions (answer / therefore / I would classify), then weaker ones
_STRONG = re.compile(
    r"\b(?:(?:the\s+)?(?:(?:correct|final|right|best|most\s+likely|likely|my|best)\s+)*(?:answer|option|choice)"
    r"(?:\s+(?:here|to\s+this\s+question))?\s*(?:is|would\s+be|will\s+be|should\s+be|=|:)(?:\s*:)?"
    r"|(?:the\s+)?(?:closest|best\s+(?:fit|match))(?:\s+(?:one|option|answer|choice|match|diagnosis))?"
    r"\s+(?:is|would\s+be)"
    r"|(?:therefore|thus|hence|consequently|in\s+conclusion|in\s+summary|to\s+summari[sz]e|to\s+conclude|overall|"
    r"all\s+in\s+all|taken\s+together)\b[,:]?"
    r"|i\s*(?:would|will|'d|'ll)?\s*(?:choose|select|pick|go\s+with|opt\s+for|classify\s+(?:this|it|the\s+\w+)"
    r"(?:\s+\w+)?\s+as|identify\s+(?:this|it|the\s+\w+)(?:\s+\w+)?\s+as|label\s+(?:this|it)\s+as|"
    r"categori[sz]e\s+(?:this|it)\s+as|call\s+(?:this|it))\b)"
    r"|(?:^|(?<=[.;!?,\n]))\s*(?:and\s+)?so\b,?", re.I)
_WEAK = re.compile(
    r"\b(?:most\s+(?:consistent|compatible)\s+with|(?:is|are|be)\s+(?:(?:most|more|highly|very)\s+)?(?:consistent|"
    r"compatible)\s+with|in\s+keeping\s+with|most\s+(?:likely|probably)|(?:is|represents?)\s+(?:likely|probably)|"
    r"(?:appears?|seems?|looks?)\s+(?:to\s+be|like)|(?:most\s+)?(?:closely\s+)?resembles?|"
    r"(?:identified|classified|categori[sz]ed|recogni[sz]ed)\s+as|"
    r"best\s+(?:described|classified|characteri[sz]ed|categori[sz]ed)\s+as|"
    r"i\s+(?:think|believe|suspect|would\s+say|'d\s+say)"
    r"|(?:diagnosis|identification|classification)\s+(?:is|would\s+be|of)|this\s+is|it\s+is|it's|these\s+are"
    r"|(?:this|the|these)\s+(?:cells?|image|picture|smear|finding|findings|lesions?|presentation)(?:\s+\w+){0,3}?\s+"
    r"(?:is|are|shows?|depicts?|represents?|demonstrates?|contains?|suggests?)|points?\s+(?:to|towards))\b", re.I)
_CLAUSE_END = re.compile(r"(?<!\bspp)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\b[A-J1-9])[.!?;\n](?=\s|$)|\n")

_NEXT_LINE = re.compile(r"[^\S\n]*\n\s*(?=\S)")


def clean(text: str) -> str:
    """LaTeX answer wrappers off: ``$\\boxed{\\text{Monocyte}}$`` → ``Monocyte``."""
    text = re.sub(r"\\text(?:bf|it)?\{([^{}]*)\}", r"\1", text)
    return re.sub(r"\$*\\boxed\{([^{}]*)\}\$*", r"\1", text)


def _lines(text: str) -> list[str]:
    text = _INLINE_ANSWER.sub("\n", text)
    out = []
    for line in text.splitlines():
        m = _TABLE_ROW.match(line)
        if m and not re.fullmatch(r"[\s:\-]*", m.group(1)):
            line = f"{m.group(1).strip()}: {m.group(2).strip()}"
        out.append(line)
    return out


def field_values(text: str) -> list[tuple[bool, str]]:
    """(is an answer field, value) for every "<field>: value" line, in order."""
    lines = _lines(text)
    found: list[tuple[bool, str]] = []
    for i, line in enumerate(lines):
        m = _FIELD.match(line)
        value = m.group("value") if m else ""
        if m and not _strip(value):
            m = None
        if m is None:
            h = _FIELD_HEADING.match(line)
            if not h or not line.strip() or not re.search(r"[#*:_]", line):
                continue
            nxt = next((ln for ln in lines[i + 1:] if ln.strip()), "")
            if not nxt or _FIELD.match(nxt):
                continue
            m, value = h, nxt
        field = re.sub(r"\s+", " ", m.group("field").lower())
        if re.search(r"\b(?:choices|options)$", field):
            continue  # "Choices:" heads the re-quoted option list, not an answer
        found.append((bool(re.search(r"\b(?:" + _FIELDS_ANSWER + r")\b", field)), value))
    return found


def clause_spans(text: str, cue: re.Pattern) -> list[tuple[int, int]]:
    """(start, end) of the clause after each match of ``cue`` — up to the end of its sentence, or
    the next non-empty line when the cue ends its line ("the most likely diagnosis is:") — last first."""
    out = []
    for m in reversed(list(cue.finditer(text))):
        start = m.end()
        end = _CLAUSE_END.search(text, start)
        stop = end.start() if end else len(text)
        if not _strip(text[start:stop]):
            nxt = _NEXT_LINE.match(text, stop)
            if nxt:
                start = nxt.end()
                end = _CLAUSE_END.search(text, start)
                stop = end.start() if end else len(text)
        out.append((start, stop))
    return out


def clauses(text: str, cue: re.Pattern) -> list[str]:
    return [text[a:b] for a, b in clause_spans(text, cue)]


# -- classification ---------------------------------------------------------------------------
class AnswerExtractor:
    def __init__(self, labels: Sequence[str], aliases: dict[str, list[str]] | None = None,
                 judge: Callable[[str], str | None] | None = None, fuzzy_cutoff: float = 0.88):
        self.labels = list(labels)
        self.judge = judge
        self.fuzzy_cutoff = fuzzy_cutoff
        self.names: dict[str, str] = {}  # normalised surface form → label
        forms: dict[str, str] = {}
        for lab in self.labels:
            self.names[normalise(lab)] = lab
            forms[lab] = lab
        for lab, alist in (aliases or {}).items():
            for a in alist:
                self.names.setdefault(normalise(a), lab)
                forms.setdefault(a, lab)
        self._exact = {lab.strip(): lab for lab in self.labels}
        self._ci = {lab.strip().lower(): lab for lab in self.labels}
        self._find = _Names(forms)

    def _whole(self, text: str) -> Extraction | None:
        t = _strip(text)
        if t in self._exact:
            return Extraction(self._exact[t], "exact")
        if t.lower() in self._ci:
            return Extraction(self._ci[t.lower()], "exact")
        for n in (normalise(t), normalise(_unarticle(t))):
            if n in self.names:
                lab = self.names[n]
                return Extraction(lab, "exact" if n == normalise(lab) else "alias")
        return None

    def _read(self, text: str) -> tuple[str | None, list[str]]:
        """One label put forward in ``text``, or (None, the labels when several are)."""
        hit = self._whole(text)
        if hit:
            return hit.label, [hit.label]
        keys = self._find.keys(text)
        return (keys[0] if len(keys) == 1 else None), keys

    def _fuzzy(self, candidates: list[str]) -> Extraction | None:
        for cand in candidates:
            n = normalise(_unarticle(_strip(cand)))
            if not n or len(n.split()) > 6:
                continue
            close = difflib.get_close_matches(n, list(self.names), n=2, cutoff=self.fuzzy_cutoff)
            if close and len({self.names[c] for c in close}) == 1:
                return Extraction(self.names[close[0]], "fuzzy", close[0])
        return None

    def extract(self, text: str | None) -> Extraction:
        ex = self._rules(text)
        if ex.label is None and self.judge is not None and text and text.strip():
            judged = self.judge(text)
            if judged in self.labels:
                return Extraction(judged, "judge", f"rules: {ex.detail}")
        return ex

    def _rules(self, text: str | None) -> Extraction:
        if text is None or not text.strip():
            return Extraction(None, "invalid", "empty reply")
        text = clean(text)
        hit = self._whole(text)
        if hit:
            return hit
        fuzzy_candidates = [text]
        # field lines: the last answer field, else the last descriptive field, that names a label
        fields = field_values(text)
        for answer_fields in (True, False):
            chosen = [v for is_answer, v in fields if is_answer == answer_fields]
            for value in reversed(chosen):
                if answer_fields and _NON_ANSWER.match(_strip(value)):
                    return Extraction(None, "invalid", f"answer field says {_strip(value)[:60]!r}")
                label, named = self._read(value)
                if label:
                    return Extraction(label, "field_line", _strip(value)[:80])
                if len(named) > 1:
                    return Extraction(None, "invalid", "field line hedges: " + ", ".join(sorted(named)))
            fuzzy_candidates += chosen
        lines = [ln for ln in text.strip().splitlines() if _strip(ln)]
        first = lines[0] if lines else ""
        sentence = re.split(r"(?<=[.!:])\s|\s[-–—]+\s|\s\(", _strip(first), maxsplit=1)[0]
        first_hit = next((h for h in (self._whole(first), self._whole(sentence)) if h), None)
        found = (self._conclusion(text, _STRONG)
                 or (Extraction(first_hit.label, "first_line") if first_hit else None)
                 or self._conclusion(text, _WEAK) or self._contains(text))
        if found and found.label:
            others = self._find.alternatives(text) - {found.label}
            if others:
                return Extraction(None, "invalid", f"{found.label} ({found.step}), but also offers "
                                  + ", ".join(sorted(others)))
        if found:
            return found
        fuzzy_candidates += [first, sentence] + clauses(text, _STRONG) + clauses(text, _WEAK)
        hit = self._fuzzy(fuzzy_candidates)
        if hit:
            return hit
        return Extraction(None, "invalid", "refusal" if _REFUSAL.search(text) else "no label found")

    def _contains(self, text: str) -> Extraction | None:
        keys = self._find.keys(text)
        if len(keys) > 1:
            return Extraction(None, "invalid", "several labels named: " + ", ".join(sorted(keys)))
        if keys and (_CANNOT_TELL.search(text) or _REFUSAL.search(text)):
            return Extraction(None, "invalid", f"says it cannot tell; names {keys[0]} only in passing")
        return Extraction(keys[0], "contains") if keys else None

    def _conclusion(self, text: str, cue: re.Pattern) -> Extraction | None:
        for start, end in clause_spans(text, cue):
            clause = text[start:end]
            hit = self._whole(clause)
            named = [hit.label] if hit else self._find.keys(text, start, end)
            if len(named) == 1:
                return Extraction(named[0], "conclusion", _strip(clause)[:80])
            if len(named) > 1:
                return Extraction(None, "invalid", "conclusion hedges: " + ", ".join(sorted(named)))
        return None


# -- multiple choice --------------------------------------------------------------------------
LETTERS = "ABCDEFGHIJ"
_MARKER = re.compile(
    r"^[\s*_`\"'>#:]*(?P<kw>(?:option|choice|answer|letter|number)\s*[:#]?\s*)?(?P<open>[(\[])?\s*"
    r"(?P<m>[A-Ja-j]|10|[1-9])\s*(?P<close>[)\]])?(?P<after>.*)$", re.S | re.I)
_REVERSED = re.compile(r"\b(?:is|seems|appears)\s+(?:to\s+be\s+)?(?:the\s+)?"
                       r"(?:(?:most|best|correct|right|likely|final)\s+)+"
                       r"(?:answer|option|choice|diagnosis|fit|match|explanation)\b", re.I)
_PROSE_MARKER = re.compile(r"\b(?:option|choice)\s+\(?([A-J]|10|[1-9])\)?(?![\w'])|(?<![\w(])\(([A-J])\)(?![\w'])")


class OptionReader:
    """Reads which of a case's options a reply chose; labels are the option numbers "1".."n"."""

    def __init__(self, options: Sequence[str], fuzzy_cutoff: float = 0.88):
        self.options = [str(o) for o in options]
        self.n = len(self.options)
        self.labels = [str(i + 1) for i in range(self.n)]
        self.fuzzy_cutoff = fuzzy_cutoff
        self._find = _Names({o: str(i + 1) for i, o in enumerate(self.options)})
        self._texts = {normalise(o): str(i + 1) for i, o in enumerate(self.options)}

    def _index(self, m: str) -> str | None:
        i = LETTERS.index(m.upper()) + 1 if m.isalpha() else int(m)
        return str(i) if 1 <= i <= self.n else None

    def _text(self, text: str) -> tuple[str | None, list[str]]:
        n = normalise(_unarticle(_strip(text)))
        if n in self._texts:
            return self._texts[n], [self._texts[n]]
        keys = self._find.keys(text)
        return (keys[0] if len(keys) == 1 else None), keys

    def marker(self, text: str, strict: bool) -> tuple[str | None, str]:
        """An option marker at the start of ``text``: (option, "") or (None, why not).

        ``strict`` (a whole line): the marker stands alone or with its own option's text.
        Otherwise also "C. <words>", "(C) <words>", "option C <words>", and an upper-case
        letter other than A/I followed by words ("C because …")."""
        m = _MARKER.match(text)
        if not m:
            return None, ""
        mark, after = m.group("m"), m.group("after")
        opt = self._index(mark)
        if opt is None or (mark in "Ii" and not (m.group("kw") or m.group("open"))):
            return None, ""  # "I" is a pronoun unless written "(I)" or "option I"
        if after and not re.match(r"\s|[.):,;\]*]+(?:\s|$|\*)|[.):,;\]*]+$|[-–—]\s", after):
            return None, ""  # "I'd", "3rd", "3-year-old", "e.g.", "3.5"
        rest = after.strip(" \t\r\n*_`\"'.:;)]-–—")
        if not rest:
            return opt, ""
        said, named = self._text(rest)
        agrees = said == opt or (not said and opt in named)
        punct = re.match(r"\s*[.:)\]]|\s+[-–—]", after)
        explicit = bool(m.group("kw") or m.group("open") or m.group("close")
                        or (punct and (mark.isupper() or mark.isdigit()))
                        or (not strict and mark.isupper() and mark not in "AI" and re.match(r"\s+[a-z(]", after)))
        if agrees and (explicit or strict):
            return opt, ""
        if not explicit:
            return None, ""
        if said or named:
            return None, f"marker {mark} but the text names option(s) {', '.join(named)}"
        return (None, "") if strict else (opt, "")

    def _line(self, line: str) -> str | None:
        """A line that is a marker, an option's text, or starts with one ("Gout — tophi …")."""
        opt, why = self.marker(line, strict=True)
        if opt or why:
            return opt
        head = re.split(r"(?<=[.!:])\s|\s[-–—]+\s|\s\(", _strip(line), maxsplit=1)[0]
        for cand in (line, head):
            opt = self._texts.get(normalise(_unarticle(_strip(cand))))
            if opt:
                return opt
        return None

    def _read(self, value: str, strict: bool = False) -> tuple[str | None, str]:
        opt, why = self.marker(value, strict)
        if opt or why:
            return opt, why
        said, named = self._text(value)
        if said:
            return said, ""
        return None, ("names options " + ", ".join(named)) if len(named) > 1 else ""

    def extract(self, text: str | None) -> Extraction:
        if text is None or not text.strip():
            return Extraction(None, "invalid", "empty reply")
        text = clean(text)
        lines = [ln for ln in text.strip().splitlines() if _strip(ln)]
        if len(lines) == 1:  # "C", "(C)", "3.", "C. Sarcoidosis", "Sarcoidosis"
            opt, why = self.marker(lines[0], strict=True)
            if why:
                return Extraction(None, "invalid", why)
            opt = opt or self._texts.get(normalise(_unarticle(_strip(lines[0]))))
            if opt:
                return Extraction(opt, "exact", _strip(lines[0])[:80])
        fuzzy_candidates = [text]
        fields = field_values(text)
        for answer_fields in (True, False):
            chosen = [v for is_answer, v in fields if is_answer == answer_fields]
            for value in reversed(chosen):
                if answer_fields and _NON_ANSWER.match(_strip(value)):
                    return Extraction(None, "invalid", f"answer field says {_strip(value)[:60]!r}")
                opt, why = self._read(value)
                if opt:
                    return Extraction(opt, "field_line", _strip(value)[:80])
                if why:
                    return Extraction(None, "invalid", "field line: " + why)
            fuzzy_candidates += chosen
        found = (self._conclusion(text, _STRONG) or self._reversed(text) or self._lines(text)
                 or self._conclusion(text, _WEAK) or self._contains(text))
        if found and found.label:
            others = self._find.alternatives(text) - {found.label}
            if others:
                return Extraction(None, "invalid", f"option {found.label} ({found.step}), but also offers "
                                  + ", ".join(sorted(others)))
        if found:
            return found
        marks = {self._index(a or b) for a, b in _PROSE_MARKER.findall(text)} - {None}
        if len(marks) == 1:
            return Extraction(marks.pop(), "marker")
        if len(marks) > 1:
            return Extraction(None, "invalid", "several option markers: " + ", ".join(sorted(marks)))
        fuzzy_candidates += [lines[0], lines[-1]] + clauses(text, _STRONG) + clauses(text, _WEAK)
        for cand in fuzzy_candidates:
            n = normalise(_unarticle(_strip(cand)))
            if n and len(n.split()) <= 8:
                close = difflib.get_close_matches(n, list(self._texts), n=2, cutoff=self.fuzzy_cutoff)
                if close and len({self._texts[c] for c in close}) == 1:
                    return Extraction(self._texts[close[0]], "fuzzy", close[0])
        return Extraction(None, "invalid", "refusal" if _REFUSAL.search(text) else "no option found")

    def _lines(self, text: str) -> Extraction | None:
        raw = text.strip().splitlines()
        for step, line, neighbour in (("last_line", raw[-1], raw[-2] if len(raw) > 1 else ""),
                                      ("first_line", raw[0], raw[1] if len(raw) > 1 else "")):
            opt = self._line(line)
            if opt and not (_strip(neighbour) and self._line(neighbour)):  # not an item of a re-quoted list
                return Extraction(opt, step, _strip(line)[:80])
        return None

    def _contains(self, text: str) -> Extraction | None:
        keys = self._find.keys(text)
        if len(keys) > 1:
            return Extraction(None, "invalid", "several options named: " + ", ".join(keys))
        if keys and (_CANNOT_TELL.search(text) or _REFUSAL.search(text)):
            return Extraction(None, "invalid", f"says it cannot tell; names option {keys[0]} only in passing")
        return Extraction(keys[0], "contains") if keys else None

    def _conclusion(self, text: str, cue: re.Pattern) -> Extraction | None:
        for start, end in clause_spans(text, cue):
            clause = text[start:end]
            opt, why = self.marker(clause, strict=False)
            if why:
                return Extraction(None, "invalid", "conclusion: " + why)
            said = opt or self._texts.get(normalise(_unarticle(_strip(clause))))
            named = [said] if said else self._find.keys(text, start, end)
            if len(named) == 1:
                return Extraction(named[0], "conclusion", _strip(clause)[:80])
            if len(named) > 1:
                return Extraction(None, "invalid", "conclusion names options " + ", ".join(named))
        return None

    def _reversed(self, text: str) -> Extraction | None:
        """"C is the correct answer", "Sarcoidosis is the most likely diagnosis"."""
        for m in reversed(list(_REVERSED.finditer(text))):
            start = max((k.end() for k in _CLAUSE_END.finditer(text, 0, m.start())), default=0)
            before = text[start:m.start()]
            opt, why = self._read(re.sub(r"^\s*(?:so|thus|therefore|hence|overall)\b[,\s]*", "", before, flags=re.I))
            if opt:
                return Extraction(opt, "conclusion", _strip(before)[:80])
            if why:
                return Extraction(None, "invalid", "conclusion: " + why)
        return None
