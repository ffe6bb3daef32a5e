"""The device mesh and the two shardings the engine uses: batch on ``data``, state replicated.

Data parallelism (DESIGN.md): one mesh axis, ``data``, over every chosen device of every
process. Under ``jax.jit`` with these shardings XLA inserts the gradient all-reduce and
BatchNorm sees global-batch statistics. The axis is ``AxisType.Auto`` because Explicit axes
(``jax.make_mesh``'s newer default) make some Optax losses raise ``ShardingTypeError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# The batch axis, its sharding and host-rows -> global arrays are the input pipeline's; the
# engine uses the same ones so that the two can never disagree.
from data_pipelines.device import DATA_AXIS, batch_sharding, to_global

__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "make_mesh",
    "place_replicated",
    "replicated",
    "select_devices",
    "to_global",
]


def select_devices(devices: int | Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """``None``: all devices; ``N``: the first N local devices of every process."""
    if devices is None:
        return list(jax.devices())
    if not isinstance(devices, int):
        return list(devices)
    if devices < 1 or devices > jax.local_device_count():
        raise ValueError(
            f"asked for {devices} devices per process, {jax.local_device_count()} available"
        )
    chosen = []
    for process in range(jax.process_count()):
        local = sorted((d for d in jax.devices() if d.process_index == process), key=lambda d: d.id)
        chosen.extend(local[:devices])
    return chosen


def make_mesh(devices: int | Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``data`` (axis type Auto) over :func:`select_devices`."""
    chosen = select_devices(devices)
    axis_type = getattr(jax.sharding, "AxisType", None)
    kwargs: dict[str, Any] = {}
    if axis_type is not None:
        kwargs["axis_types"] = (axis_type.Auto,)
    return Mesh(np.asarray(chosen), (DATA_AXIS,), **kwargs)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimizer state)."""
    return NamedSharding(mesh, PartitionSpec())


def place_replicated(tree: Any, mesh: Mesh) -> Any:
    """Put host arrays (identical on every process) on every device of ``mesh``.

    Uses ``make_array_from_callback`` so it also works when the mesh spans processes.
    """
    sharding = replicated(mesh)

    def place(x: Any) -> jax.Array:
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(place, tree)
