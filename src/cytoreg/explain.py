"""Parsing explanation replies: feature-importance scores and self-reported confidence.

Feature scores (seed A's 19 morphological features, or any list from the spec): each feature is
found by its name (case, spacing and punctuation ignored) at the start of a line of a list, a
Markdown table or "name: score" prose, and the first number after it is its score ("15%",
"15.5", "**15**", "15/100", "| 15 |"). A range ("10-15") is not a score: it stays missing and
the reason is recorded, where seed A's digit stripping made "1015". Scores that do not sum to
100 (±0.5) are renormalised to 100 and flagged; the text after "other features" is kept.

Confidence on the seed's scale (1 very confident, 2 confident, 3 neutral, 4 not confident,
5 very unconfident): explicit "confidence: 4/5" or "x out of 5" (higher = more confident, so
mapped to 6 - x), percentages, then phrases. Negations ("not very confident") are read first.
Nothing found → ``None`` (the judge can be asked, cached)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

NUM = r"[-+]?\d+(?:[.,]\d+)?"


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[*_`#>|\[\]]", " ", text)
    text = re.sub(r"[^\w%./,()+-]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _key(name: str) -> str:
    """A feature name's matching key: lower case, words only (so 'Nuclear-to-Cytoplasmic Ratio' ≈
    'nuclear to cytoplasmic ratio')."""
    return " ".join(re.findall(r"[a-z0-9]+", unicodedata.normalize("NFKC", name).lower()))


@dataclass
class FeatureScores:
    scores: dict[str, float | None]
    total: float | None = None
    renormalised: bool = False
    other: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def parsed(self) -> int:
        return sum(v is not None for v in self.scores.values())

    def normalised(self) -> dict[str, float | None]:
        """Scores scaled to sum to 100 (missing stay missing)."""
        if not self.total:
            return dict(self.scores)
        return {k: (None if v is None else 100.0 * v / self.total) for k, v in self.scores.items()}


def parse_feature_scores(text: str, features: list[str]) -> FeatureScores:
    lines = [ln for ln in (text or "").splitlines()]
    keys = {f: _key(f.split("(")[0]) or _key(f) for f in features}
    out: dict[str, float | None] = {f: None for f in features}
    problems: list[str] = []
    # longest names first so "granule type" is not taken by a shorter prefix
    order = sorted(features, key=lambda f: -len(keys[f]))
    used_lines: set[int] = set()
    for f in order:
        k = keys[f]
        for i, ln in enumerate(lines):
            if i in used_lines:
                continue
            lk = _key(ln)
            pos = lk.find(k)
            if pos < 0 or (pos > 0 and not re.fullmatch(r"(\d+ )?(\w )?", lk[:pos])):
                continue  # the name must open the line (after a bullet or number)
            rest = _after_name(ln, f)
            m = re.search(rf"({NUM})\s*(?:-|–|to)\s*({NUM})", rest)
            if m and not re.search(rf"({NUM})\s*/\s*100", rest):
                problems.append(f"{f.strip()}: a range ({m.group(0)}), not a score")
                used_lines.add(i)
                break
            m = re.search(NUM, rest)
            if m:
                out[f] = float(m.group(0).replace(",", "."))
                used_lines.add(i)
                break
    got = [v for v in out.values() if v is not None]
    total = sum(got) if got else None
    renorm = total is not None and abs(total - 100.0) > 0.5
    if renorm:
        problems.append(f"scores sum to {total:g}, not 100: renormalised")
    missing = [f.strip() for f, v in out.items() if v is None]
    if missing and got:
        problems.append(f"{len(missing)} feature(s) without a score: {', '.join(missing[:5])}"
                        f"{'…' if len(missing) > 5 else ''}")
    m = re.search(r"other features?[^\n]*?(?:\?|:)?\s*(.*)", text or "", flags=re.I | re.S)
    other = m.group(1).strip() if m else ""
    return FeatureScores(out, total, renorm, other[:2000], problems)


def _after_name(line: str, feature: str) -> str:
    """The part of a line after the feature name (and any parenthesis that belongs to it)."""
    words = re.findall(r"[A-Za-z0-9]+", feature.split("(")[0])
    pattern = r"\W*".join(re.escape(w) for w in words)
    m = re.search(pattern, line, flags=re.I)
    rest = line[m.end():] if m else line
    rest = re.sub(r"^\s*\([^)]*\)", "", rest)  # "(Presence of Auer rods, ...)"
    return rest


CONF_PHRASES: list[tuple[str, int]] = [
    (r"\b(?:not|n't|hardly|barely)\s+(?:at all\s+)?(?:very|entirely|completely|fully|totally|too)\s+"
     r"(?:confident|certain|sure)\b", 4),
    (r"\b(?:very|highly|extremely|quite)\s+(?:un(?:certain|sure)|non-?confident|low confidence)\b", 5),
    (r"\b(?:not|n't)\s+(?:at all\s+)?(?:confident|certain|sure)\b", 4),
    (r"\b(?:very low|extremely low) (?:confidence|certainty)\b", 5),
    (r"\b(?:low|limited) (?:confidence|certainty)\b", 4),
    (r"\b(?:un(?:certain|sure)|non-?confident|doubtful|hesitant|cannot be (?:sure|certain))\b", 4),
    (r"\b(?:very|highly|extremely|absolutely|completely|fully|100%)\s+(?:confident|certain|sure)\b", 1),
    (r"\b(?:very high|high) (?:degree of )?(?:confidence|certainty)\b", 1),
    (r"\b(?:moderately|somewhat|fairly|reasonably|relatively|partially)\s+(?:confident|certain|sure)\b", 3),
    (r"\b(?:moderate|medium) (?:level of )?(?:confidence|certainty)\b", 3),
    (r"\b(?:neutral)\b", 3),
    (r"\b(?:confident|certain|sure)\b", 2),
]


def parse_confidence(text: str) -> tuple[int | None, str]:
    """(seed-scale confidence 1–5 or None, what matched)."""
    t = unicodedata.normalize("NFKC", text or "")
    low = t.lower()
    m = re.search(r"confiden(?:ce|t)[^.\n]{0,40}?\b([1-5])\s*(?:/\s*5|out of 5)", low) or \
        re.search(r"\b([1-5])\s*(?:/\s*5|out of 5)\b[^.\n]{0,30}confiden", low)
    if m:
        return 6 - int(m.group(1)), f"{m.group(0).strip()} (higher is surer: mapped to {6 - int(m.group(1))})"
    m = re.search(r"(?:confiden(?:ce|t)|certain(?:ty)?|sure)[^.\n]{0,30}?\b(\d{1,3})\s*%|\b(\d{1,3})\s*%\s*"
                  r"(?:confiden(?:ce|t)|certain(?:ty)?|sure)", low)
    if m:
        pct = int(m.group(1) or m.group(2))
        if 0 <= pct <= 100:
            level = 1 if pct >= 90 else 2 if pct >= 70 else 3 if pct >= 50 else 4 if pct >= 30 else 5
            return level, f"{pct}%"
    m = re.search(r"\b(?:confidence|certainty)(?: level)?\s+(?:is|was|remains|:)\s*(?:rather |quite )?"
                  r"(very low|low|moderate|medium|high|very high)\b", low)
    if m:
        return {"very low": 5, "low": 4, "moderate": 3, "medium": 3, "high": 2, "very high": 1}[m.group(1)], m.group(0)
    # the sentence that talks about certainty, else the whole reply
    sentences = re.split(r"(?<=[.!?\n])\s+", low)
    about = [s for s in sentences if re.search(r"confiden|certain|sure|doubt|hesitant", s)]
    for s in about or [low]:
        for pattern, level in CONF_PHRASES:
            hit = re.search(pattern, s)
            if hit:
                return level, hit.group(0)
    return None, ""
