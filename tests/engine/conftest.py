"""Fixtures for the training-engine tests: a tiny run config and in-memory batches."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import TrainConfig


@pytest.fixture
def tiny_config(tmp_path) -> TrainConfig:
    """small_cnn at 32 px on the bundled OCT sample: seconds per run on 2 cores."""
    return TrainConfig(
        model="small_cnn",
        transfer="scratch",
        dataset="oct_sample",
        input_size=32,
        in_channels=1,
        batch_size=16,
        eval_batch_size=16,
        steps=4,
        val_fraction=0.25,
        log_every=2,
        eval_every=2,
        workdir=str(tmp_path / "run"),
        progress=False,
        final_split=None,
        schedule="constant",
    )


def random_batch(
    size: int, *, seed: int = 0, pixels: int = 32, channels: int = 1, num_classes: int = 4
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, size=(size, pixels, pixels, channels), dtype=np.uint8),
        "label": rng.integers(0, num_classes, size=size).astype(np.int32),
        "mask": np.ones(size, bool),
    }
