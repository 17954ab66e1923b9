"""The OpenAI route: per n, the chat fine-tuning JSONL (the evaluation's own messages with images
as data URLs, the label as the assistant's answer), checked against the documented limits, then
(with ``--yes``) uploaded and trained, one job per n, and polled until every job has finished."""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cytoreg.errors import CytoregError
from cytoreg.finetune import openai_limits as limits
from cytoreg.finetune.data import Subset, TrainingData, digest, jsonl_bytes, request_for
from cytoreg.finetune.openai_jobs import JobPlan, client_for, create, failures, poll
from cytoreg.finetune.state import State


@dataclass
class Planned:
    plan: JobPlan
    report: limits.FileReport
    val_report: limits.FileReport | None
    subset: Subset
    path: Path
    cost: float | None = None
    same_as: int | None = None  # an earlier n with identical examples (every class exhausted): its job serves


def _rgb_part(part: dict) -> dict:
    """Re-encode an image the fine-tuning API would refuse (mode other than RGB / RGBA) as RGB PNG."""
    import base64

    from PIL import Image

    head, _, b64 = part["image_url"]["url"].partition(",")
    raw = base64.b64decode(b64)
    with Image.open(io.BytesIO(raw)) as im:
        if im.mode in limits.IMAGE_MODES and head[5:].split(";")[0] in limits.IMAGE_FORMATS:
            return part
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {**part, "image_url": {**part["image_url"], "url": url}}


def examples(adapter, data: TrainingData, samples: list, generation: dict) -> list[dict]:
    lines = []
    for s in samples:
        req = request_for(data, s, generation)
        msgs = adapter.messages(req)
        req.release()
        for m in msgs:
            if isinstance(m.get("content"), list):
                m["content"] = [_rgb_part(p) if p.get("type") == "image_url" else p for p in m["content"]]
        lines.append({"messages": msgs + [{"role": "assistant", "content": s.label}]})
    return lines


def _suffix(ft: dict, task: str, n: int) -> str:
    import re

    return ft.get("suffix") or re.sub(r"[^a-z0-9-]+", "-", f"{task}-n{n}".lower())[-64:]


def plan(mspec: Any, data: TrainingData, subs: list[Subset], out: Path) -> list[Planned]:
    from cytoreg.models.openai_api import OpenAIChat

    adapter = OpenAIChat(mspec)  # only for its message format; nothing is sent
    ft = dict(mspec.get("finetune") or {})
    base = ft.get("base") or adapter.params["model"]
    gen = {k: v for k, v in (mspec.get("generation") or {}).items() if k != "tries"}
    hp = {theirs: ft[ours] for ours, theirs in (("epochs", "n_epochs"), ("batch_size", "batch_size"),
                                                  ("learning_rate_multiplier", "learning_rate_multiplier"))
          if ours in ft}
    method = {"type": "supervised", "supervised": {"hyperparameters": hp}}
    folder = out / "finetune" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    val_bytes = val_sha = val_rep = None
    if ft.get("validation"):
        if not data.val:
            raise CytoregError(f"model '{mspec.name}' sets finetune.validation, but task '{data.task}' has no "
                               f"validation split (sampling.val_per_class); set one or drop the option")
        val_lines = examples(adapter, data, data.val, gen)
        val_bytes = jsonl_bytes(val_lines)
        val_sha = digest(val_bytes)
        val_rep = limits.check_lines(val_lines, base, f"validation file ({data.task})", training=False)
        limits.check_size(val_rep, len(val_bytes), f"validation file ({data.task})")
        (folder / f"{mspec.name}-{data.task}-val-{val_sha[:12]}.jsonl").write_bytes(val_bytes)
    out_plans: list[Planned] = []
    first: dict[str, Planned] = {}
    for sub in subs:
        lines = examples(adapter, data, sub.samples, gen)
        payload = jsonl_bytes(lines)
        sha = digest(payload)
        where = f"training file n={sub.n} ({mspec.name}, {data.task})"
        rep = limits.check_lines(lines, base, where)
        limits.check_size(rep, len(payload), where)
        path = folder / f"{mspec.name}-{data.task}-n{sub.n}-{sha[:12]}.jsonl"
        if not path.exists():
            path.write_bytes(payload)
        settings = hashlib.sha256(json.dumps([base, method, _suffix(ft, data.task, sub.n), ft.get("seed"), val_sha],
                                             sort_keys=True).encode()).hexdigest()[:16]
        key = f"{mspec.name}|{data.task}|n={sub.n}|{sha[:16]}|{settings}"
        jp = JobPlan(key, sub.n, payload, sha, val_bytes, val_sha, base, method, _suffix(ft, data.task, sub.n),
                     ft.get("seed"))
        cost = limits.cost(rep.tokens, ft.get("epochs"), base, ft.get("price_per_million_tokens"))
        if sha in first:  # no second job for the same examples
            out_plans.append(Planned(first[sha].plan, rep, val_rep, sub, path, 0.0, first[sha].subset.n))
            continue
        first[sha] = Planned(jp, rep, val_rep, sub, path, cost)
        out_plans.append(first[sha])
    return out_plans


def check_table(mspec: Any, planned: list[Planned], state: State) -> tuple[list[str], list[str]]:
    """Lines describing each n (examples, images, tokens, cost, recorded job), and every limit problem."""
    ft = dict(mspec.get("finetune") or {})
    epochs = limits.epochs_for_estimate(ft.get("epochs"))
    rows, problems = [], []
    for p in planned:
        rec = state.jobs.get(p.plan.key)
        short = ", ".join(f"{lab}: {c}" for lab, c in p.subset.shortfalls.items())
        cost = "unknown price (set finetune.price_per_million_tokens)" if p.cost is None else f"≈ ${p.cost:,.2f}"
        if p.same_as is not None:
            rows.append(f"{mspec.name} n={p.subset.n}: the same {p.report.examples} examples as n={p.same_as} "
                        f"(every class has fewer images than {p.subset.n}); its model serves, no job of its own")
            continue
        rows.append(f"{mspec.name} n={p.plan.n}: {p.report.examples} examples, {p.report.images} images, "
                    f"{p.report.bytes / 1e6:.1f} MB, ≈ {p.report.tokens:,} tokens per epoch × {epochs} epochs"
                    f"{' (auto: estimated)' if ft.get('epochs', 'auto') == 'auto' else ''} = "
                    f"≈ {p.report.tokens * epochs:,} training tokens, {cost}"
                    + (f"; fewer images in {short}" if short else "")
                    + (f"; job {rec['job_id']} {rec['status']}" if rec else "") + f"  [{p.path}]")
        problems += p.report.problems
    if planned and planned[0].val_report is not None:
        v = planned[0].val_report
        rows.append(f"{mspec.name} validation file: {v.examples} examples, {v.images} images, {v.bytes / 1e6:.1f} MB")
        problems += v.problems
    return rows, problems


def train(mspec: Any, data: TrainingData, planned: list[Planned], state: State, yes: bool, retry_failed: bool,
          log: Callable[[str], None]) -> dict[int, str]:
    """Submit what is not recorded yet (needs ``yes``), poll every job to its end, and return
    n -> fine-tuned model id; a failed or cancelled job stops here with the provider's message."""
    ft = dict(mspec.get("finetune") or {})
    meta = {"model": mspec.name, "task": data.task}
    if retry_failed:
        for p in planned:
            rec = state.jobs.get(p.plan.key)
            if rec and rec.get("status") in ("failed", "cancelled"):
                state.data.setdefault("retired", []).append(state.jobs.pop(p.plan.key))
        state.save()
    planned_all, planned = planned, [p for p in planned if p.same_as is None]
    new = [p for p in planned if not (state.jobs.get(p.plan.key) or {}).get("job_id")]
    if new and not yes:
        total = sum(p.cost or 0 for p in new)
        raise CytoregError(f"{len(new)} fine-tuning job(s) of '{mspec.name}' would be submitted (n = "
                           f"{', '.join(str(p.plan.n) for p in new)}; estimated ${total:,.2f}, a paid service). "
                           f"See the details with --check, then rerun with --yes to submit")
    client = client_for(mspec)
    retired = {r.get("job_id") for r in state.data.get("retired", [])}
    try:
        for p in planned:
            create(client, state, p.plan, meta, log, skip=retired)
        keys = [p.plan.key for p in planned]
        poll(client, state, keys, float(ft.get("poll_interval", 15)), float(ft.get("max_poll_interval", 300)), log)
    finally:
        client.close()
    bad = failures(state, keys)
    if bad:
        raise CytoregError("\n".join(bad) + "\nfix the cause, then rerun with --retry-failed to submit those n again")
    return {p.subset.n: state.jobs[p.plan.key]["fine_tuned_model"] for p in planned_all}
