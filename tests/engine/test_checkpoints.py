"""Checkpoints: restore onto another device count; the NaN stop names the step and checkpoint."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import models
from engine.checkpoints import RunCheckpoints
from engine.hooks import CheckpointHook
from engine.loop import NonFiniteError, train_loop
from engine.mesh import make_mesh
from engine.optim import make_optimizer
from engine.state import TrainState, build_model, init_train_state
from engine.workdir import Workdir


def _state_on(config, mesh):
    meta = models.metadata_for(config.model, num_classes=4, in_channels=config.in_channels)
    tx, _ = make_optimizer(config, 10, "head")
    return init_train_state(build_model(config, 4), config, meta, tx, mesh)[1]


@pytest.mark.parametrize("restore_devices", [1, 2])
def test_checkpoint_from_8_devices_restores_onto_fewer(tiny_config, restore_devices):
    workdir = Workdir(tiny_config.workdir)
    saved = _state_on(tiny_config, make_mesh(8))
    saved = saved.replace(
        step=saved.step + 7, params=jax.tree.map(lambda x: x + 0.5, saved.params)
    )  # not the init values
    checkpoints = RunCheckpoints(workdir)
    checkpoints.save_latest(saved)
    checkpoints.wait()
    checkpoints.close()

    target_mesh = make_mesh(restore_devices)
    target = _state_on(tiny_config.replace(seed=1), target_mesh)  # other values, same structure
    with_new_layout = RunCheckpoints(workdir)
    restored = with_new_layout.restore_latest(target)
    with_new_layout.close()
    assert int(restored.step) == 7
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for leaf in jax.tree.leaves(restored):
        assert leaf.sharding.mesh.size == restore_devices


def test_nan_stops_with_the_step_and_the_last_good_checkpoint(tmp_path):
    """Loss turns NaN at step 5; checkpoints every 2 steps: step 4's is named, none is written
    after."""
    tx = optax.sgd(0.1)
    params = {"w": jnp.ones(3)}
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        frozen={},
        batch_stats={},
        opt_state=tx.init(params),
    )
    workdir = Workdir(tmp_path)
    checkpoints = RunCheckpoints(workdir, async_save=False)

    def step_fn(state, batch):
        del batch
        step = state.step + 1
        loss = jnp.where(step == 5, jnp.nan, 1.0)
        metrics = {"loss": loss, "correct": 1.0, "count": 1.0, "grad_norm": 1.0, "lr": 0.1}
        return state.replace(step=step), metrics

    def last():
        return str(workdir.latest_dir / str(checkpoints.latest_step()))

    with pytest.raises(NonFiniteError) as caught:
        train_loop(
            state,
            step_fn,
            iter(range(100)),
            total_steps=20,
            flush_every=3,
            hooks=[CheckpointHook(2, checkpoints)],
            last_checkpoint=last,
        )
    checkpoints.close()
    assert caught.value.step == 5
    assert caught.value.last_checkpoint.endswith("latest/4")
    assert "step 5" in str(caught.value) and "latest/4" in str(caught.value)
    assert workdir.checkpoint_steps("latest") == [2, 4]
