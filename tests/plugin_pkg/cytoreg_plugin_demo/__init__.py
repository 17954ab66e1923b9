"""A third-party cytoreg plugin used by the tests: one adapter, one metric, one spec folder."""
from collections import Counter

import numpy as np

from cytoreg.models.base import Baseline


class FirstLabel(Baseline):
    """Always answers the task's first label."""

    params_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    def predict(self, sample_ids, labels, prior, seed):
        scores = np.zeros((len(sample_ids), len(labels)))
        scores[:, 0] = 1.0
        return [labels[0]] * len(sample_ids), scores


def mode_share(p):
    """Share of answers equal to the most frequent answer."""
    counts = Counter(p.y_pred)
    return max(counts.values()) / len(p.y_pred)
