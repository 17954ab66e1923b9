"""Weightless baselines: every classification task gets its floor.

Each sample's guess uses its own generator seeded by (run seed, sample id), so the guess for a
sample never depends on which other samples are in the run, on sharding or on order.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from cytoreg.models.base import Baseline


def sample_rng(seed: int, sample_id: str, salt: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{salt}|{seed}|{sample_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class RandomBaseline(Baseline):
    """Uniform guess over the label set; scores are uniform (AUC 0.5)."""

    params_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    def predict(self, sample_ids, labels, prior, seed):
        k = len(labels)
        preds = [labels[int(sample_rng(seed, sid, "random").integers(k))] for sid in sample_ids]
        return preds, np.full((len(sample_ids), k), 1.0 / k)


class PriorBaseline(Baseline):
    """Guess drawn from the class distribution of the evaluated samples; scores = that prior."""

    params_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    def predict(self, sample_ids: Sequence[str], labels, prior, seed):
        prior = np.asarray(prior, dtype=float)
        cdf = np.cumsum(prior / prior.sum())
        preds = []
        for sid in sample_ids:
            u = sample_rng(seed, sid, "prior").random()
            preds.append(labels[int(min(np.searchsorted(cdf, u, side="right"), len(labels) - 1))])
        return preds, np.tile(prior, (len(sample_ids), 1))
