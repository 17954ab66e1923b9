"""OpenAI fine-tuning through the real SDK: upload each JSONL once (Files API, found again by its
content hash), one supervised job per n (found again by its metadata key), polled with growing
waits until every job has finished. Each step is recorded in :class:`~.state.State` before the
next, so a rerun, or a kill -9 and a rerun, uploads nothing twice and creates no job twice."""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any, Callable

from cytoreg.errors import CytoregError
from cytoreg.finetune.state import State

TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class JobPlan:
    key: str                    # model|task|n|data hash|settings hash: one job per key, ever
    n: int
    training: bytes
    training_sha: str
    validation: bytes | None
    validation_sha: str | None
    base: str
    method: dict
    suffix: str | None
    seed: int | None


def client_for(spec: Any):
    """The SDK client for a model spec, with the key and base URL rules of the ``openai`` adapter."""
    from cytoreg.models.openai_api import OpenAIChat

    adapter = OpenAIChat(spec)
    adapter.load()
    return adapter._client.with_options(max_retries=3, timeout=600.0)


def _api_error(exc: Exception, doing: str) -> CytoregError:
    return CytoregError(f"OpenAI {doing} failed: {type(exc).__name__}: {getattr(exc, 'message', exc)}")


def upload(client, state: State, payload: bytes, sha: str, log: Callable[[str], None]) -> str:
    """The file id for this content: recorded, or found on the server by name, or uploaded now."""
    import openai

    rec = state.files.get(sha)
    if rec:
        return rec["id"]
    name = f"cytoreg-{sha[:16]}.jsonl"
    try:
        for f in client.files.list(purpose="fine-tune"):
            if f.filename == name and f.bytes == len(payload):
                state.files[sha] = {"id": f.id, "filename": name, "bytes": len(payload), "found": True}
                state.save()
                log(f"found {name} already uploaded as {f.id}")
                return f.id
        f = client.files.create(file=(name, io.BytesIO(payload), "application/jsonl"), purpose="fine-tune")
    except openai.OpenAIError as exc:
        raise _api_error(exc, f"upload of {name}") from exc
    state.files[sha] = {"id": f.id, "filename": name, "bytes": len(payload)}
    state.save()
    log(f"uploaded {name} ({len(payload) / 1e6:.1f} MB) as {f.id}")
    return f.id


def create(client, state: State, plan: JobPlan, meta: dict, log: Callable[[str], None],
           skip: set[str] = frozenset()) -> dict:
    """The job for ``plan.key``: recorded, or found on the server by its metadata (not one of the
    retired ids in ``skip``), or created now."""
    import openai

    rec = state.jobs.get(plan.key)
    if rec and rec.get("job_id"):
        return rec
    training_id = upload(client, state, plan.training, plan.training_sha, log)
    validation_id = (upload(client, state, plan.validation, plan.validation_sha, log)
                     if plan.validation is not None else None)
    tag = {"cytoreg_key": plan.key[-512:]}  # metadata values are at most 512 characters
    try:
        found = [j for j in client.fine_tuning.jobs.list(metadata=tag, limit=100)
                 if (j.metadata or {}).get("cytoreg_key") == tag["cytoreg_key"] and j.id not in skip]
        if found:
            job = found[0]
            log(f"n={plan.n}: found job {job.id} created earlier")
        else:
            kwargs: dict[str, Any] = {"model": plan.base, "training_file": training_id, "method": plan.method,
                                      "metadata": tag}
            if validation_id:
                kwargs["validation_file"] = validation_id
            if plan.suffix:
                kwargs["suffix"] = plan.suffix
            if plan.seed is not None:
                kwargs["seed"] = plan.seed
            job = client.fine_tuning.jobs.create(**kwargs)
            log(f"n={plan.n}: created job {job.id} ({plan.base})")
    except openai.OpenAIError as exc:
        raise _api_error(exc, f"creating the fine-tuning job for n={plan.n}") from exc
    rec = {**meta, "n": plan.n, "base": plan.base, "training_sha256": plan.training_sha,
           "validation_sha256": plan.validation_sha, "training_file": training_id, "validation_file": validation_id,
           "method": plan.method}
    _update(rec, job)
    state.jobs[plan.key] = rec
    state.save()
    return rec


def _update(rec: dict, job) -> None:
    err = getattr(job, "error", None)
    msg = getattr(err, "message", None) if err is not None else None
    rec.update({"job_id": job.id, "status": job.status, "trained_tokens": job.trained_tokens,
                "fine_tuned_model": job.fine_tuned_model,
                "error": ({"code": getattr(err, "code", None), "message": msg, "param": getattr(err, "param", None)}
                          if msg else None)})


def poll(client, state: State, keys: list[str], first_wait: float, max_wait: float,
         log: Callable[[str], None], sleep: Callable[[float], None] = time.sleep) -> None:
    """Retrieve every unfinished job until all have finished, waiting first_wait, ×1.5 each round up to
    max_wait; transient API failures are waited out, the status of each job is recorded each round."""
    import openai

    wait = first_wait
    while True:
        active = [k for k in keys if state.jobs[k].get("status") not in TERMINAL]
        if not active:
            return
        for k in active:
            rec = state.jobs[k]
            try:
                job = client.fine_tuning.jobs.retrieve(rec["job_id"])
            except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
                    openai.RateLimitError) as exc:
                log(f"n={rec['n']}: polling {rec['job_id']} failed ({type(exc).__name__}); retrying")
                continue
            except openai.OpenAIError as exc:
                raise _api_error(exc, f"polling job {rec['job_id']} (n={rec['n']})") from exc
            before = rec.get("status")
            _update(rec, job)
            if rec["status"] != before:
                log(f"n={rec['n']}: job {rec['job_id']} {before} → {rec['status']}")
        state.save()
        if all(state.jobs[k].get("status") in TERMINAL for k in keys):
            return
        sleep(wait)
        wait = min(max_wait, wait * 1.5)


def failures(state: State, keys: list[str]) -> list[str]:
    out = []
    for k in keys:
        rec = state.jobs[k]
        if rec.get("status") in ("failed", "cancelled"):
            msg = (rec.get("error") or {}).get("message") or "no message from the provider"
            out.append(f"fine-tuning job {rec['job_id']} (model '{rec.get('model')}', task '{rec.get('task')}', "
                       f"n={rec['n']}) {rec['status']}: {msg}")
    return out
