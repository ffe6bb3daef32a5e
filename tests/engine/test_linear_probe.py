"""The linear probe's feature batches: a position that saves and restores like a Grain iterator."""

from __future__ import annotations

import numpy as np
import pytest

from engine.linear_probe import FeatureBatches
from engine.mesh import make_mesh


def _batches(seed: int = 0, batch: int = 8) -> FeatureBatches:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(20, 3)).astype(np.float32)
    labels = (np.arange(20) % 4).astype(np.int32)
    return FeatureBatches(features, labels, global_batch_size=batch, mesh=make_mesh(8), seed=seed)


def test_a_restored_position_draws_the_batches_an_unbroken_draw_would():
    straight = _batches()
    expected = [np.asarray(next(straight)["features"]) for _ in range(7)]
    first = _batches()
    for _ in range(3):  # 2 steps per epoch: the restore lands mid-way through the second epoch
        next(first)
    state = first.get_state()
    assert isinstance(state, bytes)  # Grain's checkpoint handler writes it as text
    resumed = _batches()
    resumed.set_state(state)
    resumed.start_prefetch()
    for want in expected[3:]:
        np.testing.assert_array_equal(np.asarray(next(resumed)["features"]), want)


def test_a_position_of_another_draw_is_refused():
    state = _batches(seed=0).get_state()
    with pytest.raises(ValueError, match="another draw.*seed 0 -> 1"):
        _batches(seed=1).set_state(state)
    with pytest.raises(ValueError, match="global_batch_size 8 -> 4"):
        _batches(batch=4).set_state(state)
