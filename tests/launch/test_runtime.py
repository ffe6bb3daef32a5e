"""launch.runtime.setup_devices: the simulated CPU device count, set through jax.config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launch.runtime import setup_devices

REPO_ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter (this one's JAX backends already started with 8 devices).
SCRIPT = """
import json
import jax
from launch.runtime import setup_devices
out = {"count": setup_devices(3) and jax.device_count()}
out["fewer_after_start"] = setup_devices(2)
try:
    setup_devices(4)
except RuntimeError as err:
    out["more_after_start"] = str(err)
print(json.dumps(out))
"""


def test_device_count_is_set_before_jax_starts_and_checked_after():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env |= {"PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["count"] == 3 and out["fewer_after_start"] == 2
    assert "after JAX started its backends with 3 local devices" in out["more_after_start"]


def test_a_device_count_below_one_is_refused():
    with pytest.raises(ValueError, match="--devices must be >= 1"):
        setup_devices(0)
