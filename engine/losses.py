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


def masked_pixel_cross_entropy(
    logits: jax.Array, target: jax.Array, target_mask: jax.Array, example_mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Dense task loss: softmax cross-entropy over intensity bins at every valid pixel.

    ``logits`` [B, H, W, L, K]; ``target`` [B, H, W, L] intensities in [0, 1], binned as
    ``round(t * (K - 1))`` (the paper's 256 classes when K = 256); ``target_mask`` [B, H, W, L]
    (1 where the label is valid), ``example_mask`` [B] (padding rows 0). Each label's loss is
    its mean over its valid pixels; the total is the mean over the labels that have any valid
    pixel in the batch, so a label stained in few wells still counts as much as the others.
    Returns (scalar loss, per-example fraction of valid pixels whose arg-max bin is right).
    """
    logits = logits.astype(jnp.float32)
    bins = logits.shape[-1]
    target_bins = jnp.clip(jnp.round(target * (bins - 1)), 0, bins - 1).astype(jnp.int32)
    per_pixel = optax.softmax_cross_entropy_with_integer_labels(logits, target_bins)
    rows = example_mask.astype(jnp.float32)[:, None, None, None]
    weights = target_mask.astype(jnp.float32) * rows
    per_label_count = jnp.sum(weights, axis=(0, 1, 2))
    per_label = jnp.sum(per_pixel * weights, axis=(0, 1, 2)) / jnp.maximum(per_label_count, 1.0)
    present = (per_label_count > 0).astype(jnp.float32)
    loss = jnp.sum(per_label * present) / jnp.maximum(jnp.sum(present), 1.0)
    hits = (jnp.argmax(logits, axis=-1) == target_bins).astype(jnp.float32) * weights
    valid = jnp.sum(weights, axis=(1, 2, 3))
    return loss, jnp.where(valid > 0, jnp.sum(hits, axis=(1, 2, 3)) / jnp.maximum(valid, 1.0), 0.0)
