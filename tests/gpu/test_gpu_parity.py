"""On a GPU host (`pytest -m gpu`): the same network gives the same answers on GPU and CPU.

CI machines have no GPU and deselect the marker (on a CPU host these tests skip). TF32 is disabled
(``jax_default_matmul_precision="highest"``) so float32 parity is meaningful.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import models

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    devices = (
        [d for d in jax.devices() if d.platform == "gpu"] if jax.default_backend() == "gpu" else []
    )
    if not devices:
        pytest.skip("no GPU visible to JAX (hardware this machine lacks)")
    return devices[0]


@pytest.mark.parametrize("arch,size", [("resnet50", 224), ("inception_v3", 299)])
def test_forward_matches_cpu(gpu, arch, size):
    net = models.create(arch, num_classes=4, rngs=nnx.Rngs(0))
    net.eval()
    graphdef, state = nnx.split(net)
    x = np.random.default_rng(0).normal(size=(4, size, size, 3)).astype(np.float32)

    def forward(state, x):
        return nnx.merge(graphdef, state)(x)[0]

    with jax.default_matmul_precision("highest"):
        on_gpu = jax.jit(forward)(jax.device_put(state, gpu), jax.device_put(x, gpu))
        cpu = jax.devices("cpu")[0]
        on_cpu = jax.jit(forward)(jax.device_put(state, cpu), jax.device_put(x, cpu))
    err = np.linalg.norm(np.asarray(on_gpu) - np.asarray(on_cpu)) / np.linalg.norm(
        np.asarray(on_cpu)
    )
    assert err <= 1e-4, err
