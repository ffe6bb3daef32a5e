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

DATA_AXIS = "data"


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


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
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


def place_batch(tree: Any, mesh: Mesh) -> Any:
    """Assemble global batch arrays from this process's rows (its share of the batch)."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree
    )


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """Rows this process feeds; the global batch must divide over all devices of the mesh."""
    if global_batch_size % mesh.size:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the {mesh.size} devices of the mesh"
        )
    return global_batch_size // jax.process_count()
