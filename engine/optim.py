"""Optax optimizers and learning-rate schedules from a :class:`TrainConfig`.

- ``adam`` / ``adamw`` / ``sgd`` (Nesterov-free momentum), optionally behind global-norm
  clipping.
- Weight decay touches kernels only (ndim > 1), not biases or BatchNorm scales: decoupled
  for ``adamw``, added to the gradient (L2) for ``adam`` and ``sgd``.
- Schedules: linear warm-up, then cosine decay to zero or constant.
- Fine-tuning gives the backbone ``lr * backbone_lr_scale`` through ``optax.multi_transform``
  (the classifier trains at ``lr``).
"""

from __future__ import annotations

import jax
import optax

from engine.config import TrainConfig
from engine.state import Tree

BACKBONE, CLASSIFIER = "backbone", "classifier"


def make_schedule(config: TrainConfig, total_steps: int) -> optax.Schedule:
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    if config.schedule == "cosine":
        if warmup:
            return optax.warmup_cosine_decay_schedule(
                0.0, config.lr, warmup, max(total_steps, warmup + 1)
            )
        return optax.cosine_decay_schedule(config.lr, max(total_steps, 1))
    if warmup:
        return optax.join_schedules(
            [optax.linear_schedule(0.0, config.lr, warmup), optax.constant_schedule(config.lr)],
            [warmup],
        )
    return optax.constant_schedule(config.lr)


def _decay_mask(params: Tree) -> Tree:
    return jax.tree.map(lambda p: p.ndim > 1, params)


def _base(config: TrainConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
    parts = []
    if config.weight_decay and config.optimizer != "adamw":
        parts.append(optax.add_decayed_weights(config.weight_decay, mask=_decay_mask))
    if config.optimizer == "adam":
        parts.append(optax.adam(schedule))
    elif config.optimizer == "adamw":
        parts.append(optax.adamw(schedule, weight_decay=config.weight_decay, mask=_decay_mask))
    else:
        parts.append(optax.sgd(schedule, momentum=config.momentum))
    return optax.chain(*parts)


def param_labels(params: Tree, classifier_path: str) -> Tree:
    """``"classifier"`` for leaves under ``classifier_path``, ``"backbone"`` elsewhere."""
    head = tuple(classifier_path.split("/"))

    def label(path: tuple, _: object) -> str:
        keys = tuple(str(getattr(k, "key", k)) for k in path)
        return CLASSIFIER if keys[: len(head)] == head else BACKBONE

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(
    config: TrainConfig, total_steps: int, classifier_path: str
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """-> (transformation, schedule of the classifier learning rate)."""
    schedule = make_schedule(config, total_steps)
    tx = _base(config, schedule)
    if config.transfer == "finetune" and config.backbone_lr_scale != 1.0:
        scaled = lambda step: schedule(step) * config.backbone_lr_scale
        tx = optax.multi_transform(
            {CLASSIFIER: tx, BACKBONE: _base(config, scaled)},
            lambda params: param_labels(params, classifier_path),
        )
    if config.clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(config.clip_norm), tx)
    return tx, schedule
