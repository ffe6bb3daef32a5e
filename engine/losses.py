"""Classification loss and accuracy over a masked global batch.

The loss is a weighted mean of (label-smoothed) softmax cross-entropy; padding rows
(``mask`` False) weigh zero. With class weights the normaliser is the sum of the weights of
the real rows (PyTorch ``CrossEntropyLoss(weight=...)``'s convention), so the loss scale
does not depend on the class mix of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    mask: jax.Array | None = None,
    *,
    label_smoothing: float = 0.0,
    class_weights: jax.Array | None = None,
) -> jax.Array:
    """Scalar float32 loss; ``logits`` [B, C] (any float dtype), ``labels`` int [B]."""
    logits = logits.astype(jnp.float32)
    num_classes = logits.shape[-1]
    targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    per_example = optax.softmax_cross_entropy(logits, targets)
    weights = jnp.ones_like(per_example) if mask is None else mask.astype(jnp.float32)
    if class_weights is not None:
        weights = weights * jnp.asarray(class_weights, jnp.float32)[labels]
    return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def correct_count(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    hits = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return jnp.sum(hits if mask is None else hits * mask)


def balanced_class_weights(counts: Sequence[int]) -> np.ndarray:
    """``N / (K * n_k)``: every class contributes equally to the expected loss."""
    counts = np.asarray(counts, np.float64)
    if np.any(counts <= 0):
        raise ValueError(
            f"class-weighted loss needs every class in the training set; counts {counts.tolist()}"
        )
    return (counts.sum() / (len(counts) * counts)).astype(np.float32)
