"""Test-wide setup: 8 simulated CPU devices, Keras on JAX, the shared real-data fixture."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # read when jax is imported

import jax  # after the environment above
import pytest

# Before JAX starts its backends (the first computation). Subprocesses that tests start do not
# inherit it: they pass --devices (launch.runtime) or set their own count.
jax.config.update("jax_num_cpu_devices", 8)

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
