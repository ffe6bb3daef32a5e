"""The jitted train step: data-parallel equivalence, bf16 compute, frozen parts, lr scaling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import models
from engine.mesh import make_mesh, to_global
from engine.optim import make_optimizer
from engine.state import build_model, init_train_state, split_model, stage_units, trainable_units
from engine.steps import make_train_step
from tests.engine.conftest import random_batch


def _train(config, mesh, batches, num_classes=4):
    meta = models.metadata_for(
        config.model, num_classes=num_classes, in_channels=config.in_channels
    )
    model = build_model(config, num_classes)
    tx, schedule = make_optimizer(config, 10, "head")
    model_def, state = init_train_state(model, config, meta, tx, mesh)
    step = make_train_step(model_def, tx, schedule, config, meta, mesh)
    history = []
    for batch in batches:
        state, metrics = step(state, to_global(batch, mesh))
        history.append(jax.device_get(metrics))
    return jax.device_get(state), history


def test_eight_devices_match_one_device(tiny_config):
    """Same global batch on 8 devices and on 1: same parameters and BatchNorm statistics."""
    batches = [random_batch(16, seed=s) for s in range(3)]
    on8, hist8 = _train(tiny_config, make_mesh(8), batches)
    on1, hist1 = _train(tiny_config, make_mesh(1), batches)
    for a, b in zip(jax.tree.leaves(on8), jax.tree.leaves(on1), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert [float(h["loss"]) for h in hist8] == pytest.approx(
        [float(h["loss"]) for h in hist1], rel=1e-5
    )
    # Training moved the parameters and the statistics: the comparison above is not vacuous.
    first = _train(tiny_config, make_mesh(1), batches[:0])[0]
    assert not np.allclose(first.params["head"]["kernel"], on8.params["head"]["kernel"])
    assert not np.allclose(
        first.batch_stats["stem"]["bn"]["mean"], on8.batch_stats["stem"]["bn"]["mean"]
    )


def test_bfloat16_compute_keeps_float32_parameters(tiny_config):
    batches = [random_batch(16, seed=s) for s in range(2)]
    _, hist32 = _train(tiny_config, make_mesh(8), batches)
    bf16, hist16 = _train(tiny_config.replace(dtype="bfloat16"), make_mesh(8), batches)
    assert {x.dtype for x in jax.tree.leaves(bf16.params)} == {np.dtype("float32")}
    assert {x.dtype for x in jax.tree.leaves(bf16.batch_stats)} == {np.dtype("float32")}
    assert float(hist16[0]["loss"]) == pytest.approx(float(hist32[0]["loss"]), rel=2e-2)
    assert hist16[0]["loss"] != hist32[0]["loss"]  # it really computed in another precision


def test_finetune_top_stage_freezes_the_rest(tiny_config):
    """finetune_stages=1: only the last stage and the classifier move; frozen BN stats stay."""
    config = tiny_config.replace(
        transfer="finetune", finetune_stages=1, optimizer="sgd", momentum=0.0
    )
    model = build_model(config, 4)
    meta = models.metadata_for("small_cnn", num_classes=4)
    assert stage_units(model, (32, 32, 1)) == ["stem", "stages/0", "stages/1", "head"]
    assert trainable_units(model, config, meta) == ("stages/1", "head")
    before = _train(config, make_mesh(8), [])[0]
    after, _ = _train(config, make_mesh(8), [random_batch(16)])
    assert set(after.params) == {"stages", "head"} and set(after.params["stages"]) == {1}
    np.testing.assert_array_equal(
        before.frozen["stem"]["conv"]["kernel"], after.frozen["stem"]["conv"]["kernel"]
    )
    np.testing.assert_array_equal(
        before.batch_stats["stem"]["bn"]["mean"], after.batch_stats["stem"]["bn"]["mean"]
    )
    assert not np.allclose(
        before.batch_stats["stages"][1]["bn"]["mean"], after.batch_stats["stages"][1]["bn"]["mean"]
    )
    assert not np.allclose(before.params["head"]["kernel"], after.params["head"]["kernel"])


def test_backbone_learning_rate_is_scaled(tiny_config):
    """Plain SGD: a backbone update is exactly backbone_lr_scale times the full-lr update."""
    base = tiny_config.replace(transfer="finetune", optimizer="sgd", momentum=0.0, lr=0.1)
    batch = [random_batch(16)]
    start = _train(base, make_mesh(1), [])[0]
    full, _ = _train(base.replace(backbone_lr_scale=1.0), make_mesh(1), batch)
    scaled, _ = _train(base.replace(backbone_lr_scale=0.1), make_mesh(1), batch)
    kernel = lambda s: s.params["stem"]["conv"]["kernel"]
    head = lambda s: s.params["head"]["kernel"]
    np.testing.assert_allclose(
        kernel(scaled) - kernel(start), 0.1 * (kernel(full) - kernel(start)), rtol=1e-4, atol=1e-7
    )
    np.testing.assert_allclose(head(scaled), head(full), rtol=1e-6)


class _DropoutNet(nnx.Module):
    """Two dropout layers on a linear feature: enough to see how the RNG streams are seeded."""

    def __init__(self, rngs: nnx.Rngs):
        self.stem = nnx.Linear(4, 64, rngs=rngs)
        self.drop1 = nnx.Dropout(0.5, rngs=rngs)
        self.drop2 = nnx.Dropout(0.5, rngs=rngs)
        self.head = nnx.Linear(64, 2, rngs=rngs)

    def __call__(self, x):
        h = self.stem(x.reshape(x.shape[0], -1)[:, :4])
        a, b = self.drop1(h), self.drop2(h)
        return self.head(a + b), {"pre_logits": h, "a": a, "b": b}


def test_dropout_streams_follow_the_step_and_differ_per_layer(tiny_config):
    meta = models.metadata_for("small_cnn", num_classes=2).replace(mean=(0.5,), std=(0.25,))
    model_def, params, frozen, stats = split_model(_DropoutNet(nnx.Rngs(0)), tiny_config, meta)
    x = jnp.ones((8, 2, 2, 1))

    def masks(step):
        rest = model_def.seeded_rest(jax.random.fold_in(jax.random.key(0), step))
        _, extras = jax.jit(
            lambda r: model_def.merge(params, frozen, stats, train=True, rest=r)(x)
        )(rest)
        return np.asarray(extras["a"] != 0), np.asarray(extras["b"] != 0)

    a1, b1 = masks(1)
    a1_again, _ = masks(1)
    a2, _ = masks(2)
    np.testing.assert_array_equal(a1, a1_again)  # a function of the step alone
    assert (a1 != a2).any() and (a1 != b1).any()  # new masks each step, independent layers
    # And the jitted train step runs with them (dropout under grad, no trace-level errors).
    tx, schedule = make_optimizer(tiny_config, 10, "head")
    model_def, state = init_train_state(
        _DropoutNet(nnx.Rngs(0)), tiny_config, meta, tx, make_mesh(8)
    )
    step = make_train_step(model_def, tx, schedule, tiny_config, meta, make_mesh(8))
    _, metrics = step(state, to_global(random_batch(16, pixels=2, num_classes=2), make_mesh(8)))
    assert np.isfinite(float(metrics["loss"]))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet18", ["stem", "stage1", "stage2", "stage3", "stage4", "head"]),
        ("efficientnet_lite0", ["stem", *[f"stages/{i}" for i in range(7)], "head_conv", "head"]),
    ],
)
def test_stages_come_in_forward_order_whatever_the_attribute_order(name, expected):
    abstract = nnx.eval_shape(
        lambda: models.create(name, num_classes=4)
    )  # attributes come back sorted
    assert stage_units(abstract, (64, 64, 3)) == expected
