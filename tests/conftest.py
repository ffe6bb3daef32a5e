"""Test-wide setup: 8 simulated CPU devices, Keras on JAX, the shared real-data fixture."""

from __future__ import annotations

import os
from pathlib import Path

# Must happen before JAX initialises its backends (i.e. before any test imports jax).
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("KERMANY_SHARED_DATA", REPO_ROOT.parent / "shared" / "data" / "kermany")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data/kermany; fails (never skips) under CI when it is missing."""
    if not (SHARED_DATA / "oct").is_dir():
        msg = f"shared real images not found at {SHARED_DATA} (set KERMANY_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture
def rng_seed() -> int:
    return 0
