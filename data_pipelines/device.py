"""The host/device boundary: global batches on the mesh, and normalisation on the device.

Batches leave the host as uint8 (4x less to copy than float32) and become one global
``jax.Array`` sharded on the mesh's ``data`` axis, built from each process's own rows with
``jax.make_array_from_process_local_data``. ``normalize`` runs inside the engine's jitted
steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def normalize(images: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
    """uint8 ``[..., C]`` -> float32 ``(x / 255 - mean) / std`` per channel (jit-friendly).

    ``mean``/``std`` of length 1 broadcast over any channel count; otherwise the length must
    equal the channel count.
    """
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    channels = images.shape[-1]
    if mean.shape[-1] not in (1, channels) or std.shape[-1] not in (1, channels):
        raise ValueError(
            f"normalize: mean/std of length {mean.shape[-1]}/{std.shape[-1]} do not match "
            f"{channels} image channel(s)"
        )
    return (images.astype(jnp.float32) / 255.0 - mean) / std


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over the ``data`` axis, the rest replicated."""
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"mesh has axes {mesh.axis_names}; the input pipeline needs a {DATA_AXIS!r} axis"
        )
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """The per-process batch size, after checking it splits evenly over processes and devices."""
    processes = jax.process_count()
    shards = mesh.shape[DATA_AXIS]
    if global_batch_size < 1 or global_batch_size % processes or global_batch_size % shards:
        raise ValueError(
            f"global_batch_size={global_batch_size} must be a positive multiple of the "
            f"process count ({processes}) and of the mesh's {DATA_AXIS!r} size ({shards})"
        )
    return global_batch_size // processes


def to_global(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows of every field -> global arrays sharded on ``data``."""
    sharding = batch_sharding(mesh)
    processes = jax.process_count()
    out = {}
    for key, local in batch.items():
        global_shape = (local.shape[0] * processes, *local.shape[1:])
        out[key] = jax.make_array_from_process_local_data(sharding, local, global_shape)
    return out
