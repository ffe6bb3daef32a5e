"""The jitted steps: one pure train step and one forward for evaluation, sharded over the mesh.

Both take plain pytrees (the :class:`~engine.state.TrainState` and a batch dict) and merge
the NNX model inside, so nothing NNX crosses the jit boundary in the hot loop. The batch
is sharded on ``data``; the state is replicated and donated. Images arrive as uint8 and are
normalised on the device (``data_pipelines.device.normalize``) with the weights' mean/std.
Dropout / stochastic-depth randomness comes from ``fold_in(seed, step)``, so a resumed run
draws exactly the masks an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from data_pipelines.device import normalize  # the data layer owns pixel conventions
from engine.config import TrainConfig
from engine.losses import correct_count, cross_entropy
from engine.mesh import batch_sharding, replicated
from engine.state import ModelDef, TrainState
from models.metadata import WeightMetadata

Batch = dict[str, jax.Array]
TrainStep = Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]


def step_metrics(loss, logits, labels, mask, grads, lr) -> dict[str, jax.Array]:
    """What every train step reports (summed on device, fetched every ``log_every`` steps)."""
    return {
        "loss": loss,
        "correct": correct_count(logits, labels, mask),
        "count": jnp.sum(mask.astype(jnp.float32)),
        "grad_norm": optax.tree.norm(grads),
        "lr": jnp.asarray(lr, jnp.float32),
    }


def compute_dtype(name: str) -> jnp.dtype:
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def prepare_images(
    images: jax.Array, metadata: WeightMetadata, dtype: Any = jnp.float32
) -> jax.Array:
    """uint8 NHWC -> normalised ``dtype`` (float inputs are taken as already normalised)."""
    if jnp.issubdtype(images.dtype, jnp.integer):
        images = normalize(images, metadata.mean, metadata.std)
    return images.astype(dtype)


def make_train_step(
    model_def: ModelDef,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    config: TrainConfig,
    metadata: WeightMetadata,
    mesh: Mesh,
    class_weights: Sequence[float] | None = None,
) -> TrainStep:
    """``step(state, batch) -> (state, metrics)``, jitted, state donated.

    ``metrics`` (device scalars, fetched by the loop every N steps): ``loss``, ``correct``,
    ``count`` (real examples), ``grad_norm``, ``lr`` (the classifier's).
    """
    base_key = jax.random.key(config.seed)
    dtype = compute_dtype(config.dtype)
    weights = None if class_weights is None else jnp.asarray(class_weights, jnp.float32)

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        images = prepare_images(batch["image"], metadata, dtype)
        labels, mask = batch["label"], batch["mask"]
        rest = model_def.seeded_rest(jax.random.fold_in(base_key, state.step))

        def loss_fn(params):
            model = model_def.merge(params, state.frozen, state.batch_stats, train=True, rest=rest)
            logits, _ = model(images)
            loss = cross_entropy(
                logits, labels, mask, label_smoothing=config.label_smoothing, class_weights=weights
            )
            return loss, (logits, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))

        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = step_metrics(loss, logits, labels, mask, grads, schedule(state.step))
        new_state = TrainState(
            step=state.step + 1,
            params=params,
            frozen=state.frozen,
            batch_stats=stats,
            opt_state=opt_state,
        )
        return new_state, metrics

    return jit_train_step(step, mesh)


def jit_train_step(step: Callable, mesh: Mesh) -> Callable:
    """``step(state, batch) -> (state, metrics)`` jitted the one way every task trains:
    state replicated and donated, batch sharded on the data axis, metrics replicated."""
    return jax.jit(
        step,
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=0,
    )


Forward = Callable[[Any, jax.Array], jax.Array]


def make_forward(
    graphdef: nnx.GraphDef,
    metadata: WeightMetadata,
    mesh: Mesh,
    *,
    output: str | tuple[str, ...] = "probabilities",
    dtype: Any = jnp.float32,
    flip_average: bool = False,
) -> Forward:
    """``forward(states, images)``: the model (eval mode) on a batch sharded over ``mesh``.

    ``states`` is the tuple of state trees ``nnx.merge(graphdef, *states)`` expects.
    ``output``: ``"probabilities"`` (softmax, float32), ``"logits"`` (float32), an ``extras``
    name such as ``"pre_logits"`` (float32: the linear-probe features), or a tuple of
    ``extras`` names, each global-average-pooled when spatial, concatenated (multi-stage
    features). ``flip_average``: the mean of the outputs for the images and their mirror
    images (horizontal-flip test-time augmentation).
    """

    def once(model: nnx.Module, images: jax.Array) -> jax.Array:
        logits, extras = model(images)
        if output == "probabilities":
            return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        if output == "logits":
            return logits.astype(jnp.float32)
        if isinstance(output, str):
            return extras[output].astype(jnp.float32)
        pooled = [
            (extras[k].mean(axis=(1, 2)) if extras[k].ndim == 4 else extras[k]).astype(jnp.float32)
            for k in output
        ]
        return jnp.concatenate(pooled, axis=-1)

    def forward(states: Any, images: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, *states)
        images = prepare_images(images, metadata, dtype)
        out = once(model, images)
        if flip_average:
            out = (out + once(model, images[:, :, ::-1])) / 2
        return out

    return jax.jit(
        forward,
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=batch_sharding(mesh),
    )
