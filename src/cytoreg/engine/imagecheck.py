"""The run's image pre-check: every test image of a task is decoded once (:mod:`cytoreg.images`)
before any model sees it. A sample whose image is missing, unreadable or does not decode is an
error record naming the file and the decoder's message, for every model (baselines included,
so all models are scored on the same samples); no request is sent for it and the run goes on.
For API adapters each record says what was sent (``image_sent``: ``original`` or ``png: why``)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np

from cytoreg.engine.execute import CallStats
from cytoreg.metrics.classification import Predictions
from cytoreg.scoring import Evaluation


def run_checked(prep: Any, adapter: Any, setting: str, run: Callable[[Any], Evaluation]) -> Evaluation:
    """``run`` on the samples whose image decodes; error records for the others, in test order."""
    infos = prep.image_infos()
    bad = {sid: info.error for sid, info in infos.items() if info.error}
    ev = run(prep.without(bad)) if len(bad) < len(prep.test) else None
    if bad:
        ev = _with_errors(prep, ev, bad, adapter, setting)
    sendable = getattr(adapter, "sendable_mimes", None)
    if sendable:
        for r in ev.records:
            info = infos.get(r["id"])
            if info is not None and not info.error:
                r["image_sent"] = info.api_form(sendable)
    return ev


def _with_errors(prep: Any, ev: Evaluation | None, bad: dict[str, str], adapter: Any, setting: str) -> Evaluation:
    """The records of ``ev`` with the undecodable samples' error records put back in test order.
    The scores stay those of the answered samples (``ev.predictions``): an image that never
    reached the model is an error, not a wrong answer, and gets no made-up probability row."""
    tries = ev.tries if ev is not None else int(((adapter.spec.get("generation") or {}) if
                                                 getattr(adapter, "capability", "") == "generator" else {}).get("tries", 1))
    good_records: dict[str, list[dict]] = {}
    for r in (ev.records if ev is not None else []):
        good_records.setdefault(r["id"], []).append(r)
    records = []
    for s in prep.test:
        if s.id in bad:
            records += [{"id": s.id, "label": s.label, "try": t, "response": None, "parsed": None, "match": "error",
                         "correct": None, "error": bad[s.id]} for t in range(tries)]
        else:
            records += good_records.get(s.id, [])
    if ev is None:
        scores = None if getattr(adapter, "capability", "") == "generator" else np.zeros((0, len(prep.labels)))
        return Evaluation(prep.spec.name, adapter.name, setting, records, Predictions([], [], prep.labels, scores),
                          CallStats(), 0, {}, tries, ids=[])
    return replace(ev, records=records)
