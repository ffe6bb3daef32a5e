"""Occlusion maps by incremental inference (``method="incremental"`` / ``"approximate"``).

The heatmap conventions are ``engine.occlusion.sweep``'s; only how each occluded copy's target
probability is computed differs: the model's forward for one image is traced once
(``engine.occlusion.incremental``), every layer's output for the unoccluded image is cached
inside each compiled chunk, and per window only the patch each layer's output changes by is
recomputed (``vmap`` over window positions, sharded over the mesh's ``data`` axis). ``exact``
up to float rounding (``tests/engine/occlusion/test_occlusion_incremental.py``: <= 1e-5 on every
probability).

``approximate``: the projective-field threshold ``tau`` (a layer's patch is capped at that
fraction of its feature map) and/or adaptive drill-down (the windows of a grid ``factor``
times coarser first, then the full-stride windows only in the cells of the top ``r`` fraction
of coarse windows by drop; the other windows take the bilinear interpolation of the coarse
map).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from engine.mesh import batch_sharding
from engine.mesh import replicated as replicated_sharding
from engine.occlusion import incremental
from engine.occlusion.sweep import ApplyFn, OcclusionConfig, fill_images, window_origins

ProgressFn = Callable[[int, int], None]


def _abstract_key(variables: Any) -> tuple:
    leaves = jax.tree.leaves(variables)
    return (
        jax.tree.structure(variables),
        tuple((tuple(np.shape(x)), x.dtype) for x in leaves),
    )


@functools.lru_cache(maxsize=8)
def _traced(
    apply_fn: ApplyFn, key: tuple, image_shape: tuple[int, ...]
) -> incremental.IncrementalModel:
    treedef, leaves = key
    abstract = jax.tree.unflatten(
        treedef, [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in leaves]
    )
    return incremental.IncrementalModel.trace(apply_fn, abstract, image_shape)


def traced_model(apply_fn: ApplyFn, variables: Any, image_shape: tuple[int, ...]):
    """The traced single-image program of ``apply_fn`` (cached per function and shapes)."""
    return _traced(apply_fn, _abstract_key(variables), tuple(image_shape))


@functools.lru_cache(maxsize=16)
def _compiled(
    apply_fn: ApplyFn,
    key: tuple,
    image_shape: tuple[int, ...],
    config: OcclusionConfig,
    mesh: Mesh,
    tau: float | None,
):
    """The jitted chunk program: (variables, image, iy[B], ix[B], target) -> target probs[B]."""
    model = _traced(apply_fn, key, image_shape)
    h, w = image_shape[:2]
    ys = incremental.window_axis(window_origins(h, config.window, config.stride), config.window, h)
    xs = incremental.window_axis(window_origins(w, config.window, config.stride), config.window, w)
    replicated, batch = replicated_sharding(mesh), batch_sharding(mesh)

    @functools.partial(
        jax.jit,
        in_shardings=(replicated, replicated, batch, batch, replicated),
        out_shardings=batch,
    )
    def target_probs(variables, image, iy, ix, target):
        image = image.astype(jnp.float32)[None]
        fill = fill_images(image, config)
        cache = model.cache(variables, image)

        def one(a, b):
            return model.window_logits(cache, image, fill, ys, xs, a, b, tau=tau)[0]

        logits = jax.vmap(one)(iy, ix)
        logits = jax.lax.with_sharding_constraint(logits, batch)
        probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        return jnp.take(probs, target, axis=1)

    return target_probs


def _chunk_size(count: int, max_batch: int, devices: int) -> int:
    """Even chunks of at most ``max_batch`` (rounded up to the device count): little padding."""
    chunks = -(-count // max(max_batch, 1))
    size = -(-count // chunks)
    return -(-size // devices) * devices


def window_probabilities(
    apply_fn: ApplyFn,
    variables: Any,
    images: np.ndarray,
    pairs: list[np.ndarray],
    targets: np.ndarray,
    *,
    config: OcclusionConfig,
    mesh: Mesh,
    tau: float | None,
    progress: ProgressFn | None = None,
) -> list[np.ndarray]:
    """Occluded target probability of the windows ``pairs[n]`` (``[k, 2]`` origin indices
    (iy, ix)) of every image n, computed incrementally; one chunk program for all images."""
    image_shape = tuple(images.shape[1:])
    key = _abstract_key(variables)
    total = sum(len(p) for p in pairs)
    largest = max((len(p) for p in pairs), default=0)
    if largest == 0:
        return [np.zeros(0, np.float32) for _ in pairs]
    chunk = _chunk_size(largest, config.max_batch, mesh.size)
    program = _compiled(apply_fn, key, image_shape, config, mesh, tau)
    out = [np.empty(len(p), np.float32) for p in pairs]
    in_flight: list[tuple[int, int, int, Any]] = []
    done = 0

    def collect_oldest() -> None:
        nonlocal done
        n, start, count, values = in_flight.pop(0)
        out[n][start : start + count] = np.asarray(values)[:count]
        done += count
        if progress is not None:
            progress(done, total)

    for n, image_pairs in enumerate(pairs):
        for start in range(0, len(image_pairs), chunk):
            part = image_pairs[start : start + chunk]
            padded = np.concatenate([part, np.repeat(part[:1], chunk - len(part), axis=0)])
            in_flight.append(
                (
                    n,
                    start,
                    len(part),
                    program(
                        variables,
                        images[n],
                        padded[:, 0].astype(np.int32),
                        padded[:, 1].astype(np.int32),
                        np.int32(targets[n]),
                    ),
                )
            )
            if len(in_flight) > 2:
                collect_oldest()
    while in_flight:
        collect_oldest()
    return out


def drill_down_pairs(grid: tuple[int, int], factor: int) -> np.ndarray:
    """The coarse windows: every ``factor``-th origin on each axis, plus the last one."""
    axes = []
    for g in grid:
        idx = np.arange(0, g, factor)
        if idx[-1] != g - 1:
            idx = np.append(idx, g - 1)
        axes.append(idx)
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2), axes


def interpolate_coarse(coarse: np.ndarray, axes: list[np.ndarray], grid: tuple[int, int]):
    """Bilinear interpolation of a coarse map (values at ``axes``) onto the full grid."""
    gy, gx = grid
    rows = np.stack([np.interp(np.arange(gx), axes[1], coarse[i]) for i in range(len(axes[0]))])
    return np.stack([np.interp(np.arange(gy), axes[0], rows[:, j]) for j in range(gx)], axis=1)


def refine_pairs(
    coarse: np.ndarray, axes: list[np.ndarray], grid: tuple[int, int], fraction: float, factor: int
) -> np.ndarray:
    """Full-grid windows within ``factor`` origins of the top ``fraction`` coarse windows."""
    flat = coarse.ravel()
    keep = max(1, int(np.ceil(fraction * flat.size)))
    top = np.argsort(-flat, kind="stable")[:keep]
    chosen = np.zeros(grid, bool)
    for t in top:
        cy, cx = axes[0][t // coarse.shape[1]], axes[1][t % coarse.shape[1]]
        chosen[max(0, cy - factor + 1) : cy + factor, max(0, cx - factor + 1) : cx + factor] = True
    return np.argwhere(chosen)
