"""The judge step of answer extraction (seed A's "answer cleaning"): a reply that the rules could
not map to one label is sent, as text only, to a judge model with the task's review prompt; the
judge's reply must itself map to a label (or it says ``NA``). Judge requests are cached like any
other request, so a rerun or a second model's run reuses them."""
from __future__ import annotations

import re
from cytoreg.cache import ResponseCache, request_key
from cytoreg.engine.execute import CallStats, run_generator
from cytoreg.models.base import ChatRequest, Generator, Message, Response, TextPart

NA = "NA (Chatbot is unsure/ambiguious/doesn't know/no answer provided/class cannot be determined)"
DEFAULT_GENERATION = {"temperature": 0, "max_tokens": 64}


def default_prompt(labels: list[str]) -> str:
    """Seed A's review wording, for tasks whose spec has no ``prompts.judge``."""
    listed = "\n".join(f"    {lab}" for lab in [NA, *labels])
    return ("Chatbot answered: {answer}\nWhich of the classes listed below does the chatbot's answer belong to? "
            f"Write just the label (exactly as written below) and nothing else:\n{listed}")


def needs_judge(record: dict) -> bool:
    return record["parsed"] is None and record["error"] is None and bool((record["response"] or "").strip())


def ask_judge(judge: Generator, texts: list[str], cache: ResponseCache, task: str, sample_ids: list[str],
              concurrency: int | None = None) -> list[Response]:
    """Send text-only prompts to the judge, through the response cache; replies in order."""
    gen = {**DEFAULT_GENERATION, **{k: v for k, v in (judge.spec.get("generation") or {}).items() if k != "tries"}}
    fp = judge.fingerprint()
    reqs = [ChatRequest([Message("user", [TextPart(t)])], gen) for t in texts]
    keys = [request_key(fp, r.canonical()) for r in reqs]
    hits = cache.get_many(keys)
    replies: dict[int, Response] = {i: hits[k] for i, k in enumerate(keys) if k in hits}
    missing = [i for i in range(len(keys)) if i not in replies]
    if missing:
        from cytoreg.engine.breaker import load_or_stop

        load_or_stop(judge)  # a judge that cannot load is stopped: its requests are answered "not sent"

        def done(j: int, resp: Response) -> None:
            i = missing[j]
            replies[i] = resp
            if resp.error is None:
                cache.put(keys[i], resp, model_fingerprint=fp, model=judge.name, task=task, sample_id=sample_ids[i])

        run_generator(judge, [reqs[i] for i in missing], done, CallStats(), concurrency)
    return [replies[i] for i in range(len(keys))]


def apply_judge(judge: Generator, kind, prep, records: list[dict], cache: ResponseCache,
                concurrency: int | None = None) -> dict[str, int]:
    """Re-map the records the rules left invalid; returns the judge's token usage."""
    todo = [r for r in records if needs_judge(r)]
    if not todo:
        return {}
    by_id = {s.id: s for s in prep.test}
    texts = [kind.judge_prompt(by_id[r["id"]]).replace("{answer}", r["response"]) for r in todo]
    replies = dict(enumerate(ask_judge(judge, texts, cache, prep.spec.name, [r["id"] for r in todo], concurrency)))
    usage: dict[str, int] = {}
    for i, r in enumerate(todo):
        resp = replies[i]
        for k, v in (resp.usage or {}).items():
            usage[f"judge_{k}"] = usage.get(f"judge_{k}", 0) + int(v)
        r["judge_response"] = resp.text if resp.error is None else None
        if resp.error is not None:
            r["match_detail"] = f"{r['match_detail']}; judge failed: {resp.error}"
            continue
        reply = (resp.text or "").strip()
        if re.match(r"^\W*NA\b", reply):
            r["match_detail"] = f"{r['match_detail']}; judge: NA"
            continue
        ex = kind.extract(by_id[r["id"]], reply)
        if ex.label is None:
            r["match_detail"] = f"{r['match_detail']}; judge reply not a label: {reply[:80]!r}"
            continue
        r.update(parsed=ex.label, match="judge", correct=ex.label == r["label"],
                 match_detail=f"rules: {r['match_detail'] or 'no label'}; judge: {reply[:80]!r}")
    return usage
