"""Validation during training: run the eval forward over a split, reduce to a few numbers.

These are the numbers that pick the "best" checkpoint (``TrainConfig.best_metric``) and
draw the validation curves. The paper's full metrics with confidence intervals are
``engine.evaluation.metrics`` / ``engine.evaluation.evaluate``'s job, on the test split,
after training.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from engine.steps import Forward


def host_rows(x: jax.Array) -> np.ndarray:
    """Every row of a global batch array, on every process."""
    if jax.process_count() > 1:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def gather_outputs(
    forward: Forward, states: Any, batches: Iterable[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """``forward(states, batch["image"])`` over eval batches -> (outputs [N, ...], index [N]).

    Padding (``index`` -1 or ``mask`` False) is dropped; rows are sorted by source index.
    """
    outputs, indices = [], []
    for batch in batches:
        out = host_rows(forward(states, batch["image"]))
        index = host_rows(batch["index"]).astype(np.int32)
        keep = index >= 0
        if "mask" in batch:
            keep &= host_rows(batch["mask"]).astype(bool)
        outputs.append(out[keep])
        indices.append(index[keep])
    if not outputs:
        raise ValueError("the evaluation iterator yielded no batches")
    out, index = np.concatenate(outputs), np.concatenate(indices)
    order = np.argsort(index, kind="stable")
    return out[order], index[order]


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``loss`` (mean NLL), ``accuracy``, ``balanced_accuracy`` (mean per-class recall),
    ``count``."""
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        raise ValueError("no examples to evaluate")
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    predicted = np.argmax(probs, axis=1)
    recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
    return {
        "loss": float(-np.mean(np.log(picked))),
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(np.mean(recalls)),
        "count": float(len(labels)),
    }
