"""Occlusion sensitivity (Zeiler & Fergus 2014) as the paper ran it, batched on device.

A ``window`` x ``window`` box of ``fill`` slides over each image with ``stride``; at every
position the softmax probability of a target class is recorded, and the heatmap is the *drop*
from the unoccluded probability (positive = the box hid something the decision needed).

How it is computed: the (image, window position) pairs of all images are enumerated in
image-major order and cut into chunks of ``max_batch`` occluded copies. For one chunk, the few
images it touches are put on every device, the occluded copies are built on device with
``vmap`` over (image slot, window origin), sharded over the mesh's ``data`` axis, pushed
through the model's batched forward (eval mode) and reduced to the target probability, so
only ``max_batch`` floats per chunk come back to the host. Chunks are dispatched ahead of the
host (two in flight), so hundreds of images go through one call with bounded memory. The
inputs are host arrays of this process: one process (any number of local devices).
That is ``method="full"``. ``"incremental"`` (the default; exact) and ``"approximate"``
recompute per window only the patch each layer changes (``engine.occlusion.incremental_maps``,
``engine.occlusion.incremental``), one image per chunk, under the same conventions and outputs.

Conventions:
- Window origins along an axis of length L are ``0, stride, ..., <= L - window``
  (``(L - window) // stride + 1`` positions; 4,900 per 299-px image at stride 4).
- ``fill`` works in the pixel space of the images passed in (before the model's
  normalisation, which belongs to ``apply_fn``): ``zero`` = black, ``mean`` = the image's
  per-channel mean, ``blur`` = the image blurred with a Gaussian of ``blur_sigma`` px
  (default ``window / 2``).
- The pixel map (:meth:`OcclusionResult.pixel_maps`) gives every pixel the mean drop of the
  windows covering it; pixels no window covers (``stride > window``, or the last rows/columns
  when ``stride`` does not divide ``L - window``) take the value of the nearest window.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from engine.mesh import batch_sharding, make_mesh
from engine.mesh import replicated as replicated_sharding
from engine.predictor import host_batched
from engine.steps import shard_forward

FILLS = ("zero", "mean", "blur")
# full: every occluded copy through the whole network; incremental: only the patch each
# window changes, layer by layer (exact; engine.occlusion.incremental); approximate: incremental
# with Krypton's projective-field threshold tau and/or adaptive drill-down
# (engine.occlusion.incremental_maps).
METHODS = ("full", "incremental", "approximate")
DEFAULT_METHOD = "incremental"
APPROXIMATE_TAU = 0.5  # what method="approximate" uses when neither tau nor drill_down is set
APPROXIMATE_DRILL_DOWN = 0.25
ApplyFn = Callable[[Any, jax.Array], Any]  # (variables, float32 images [B,H,W,C]) -> logits [B,K]
ProgressFn = Callable[[int, int], None]  # (occluded copies done, total)


@dataclasses.dataclass(frozen=True)
class OcclusionConfig:
    """The occluder: box side and step in input pixels, what fills it, copies per forward."""

    window: int = 20
    stride: int = 4
    fill: str = "zero"
    max_batch: int = 256
    blur_sigma: float | None = None
    method: str = DEFAULT_METHOD
    tau: float | None = None  # approximate: cap each layer's patch at this fraction of its map
    drill_down: float | None = None  # approximate: refine around this top fraction of windows
    drill_down_factor: int = 2  # approximate: the coarse pass uses stride * factor

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ValueError(f"fill {self.fill!r} is not one of {FILLS}")
        if self.window < 1 or self.stride < 1 or self.max_batch < 1:
            raise ValueError(f"window, stride and max_batch must be >= 1: {self}")
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {METHODS}")
        if self.method != "approximate" and (self.tau is not None or self.drill_down is not None):
            raise ValueError(f"tau and drill_down need method='approximate', got {self.method!r}")
        if self.tau is not None and not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if self.drill_down is not None and not 0.0 < self.drill_down <= 1.0:
            raise ValueError(f"drill_down must be in (0, 1], got {self.drill_down}")
        if self.drill_down_factor < 2:
            raise ValueError(f"drill_down_factor must be >= 2, got {self.drill_down_factor}")

    @property
    def approximation(self) -> tuple[float | None, float | None]:
        """(tau, drill-down fraction) in effect: both None unless method is approximate."""
        if self.method != "approximate":
            return None, None
        if self.tau is None and self.drill_down is None:
            return APPROXIMATE_TAU, APPROXIMATE_DRILL_DOWN
        return self.tau, self.drill_down

    def exact(self) -> OcclusionConfig:
        """The same occluder computed exactly (incremental), for fidelity checks."""
        return dataclasses.replace(self, method="incremental", tau=None, drill_down=None)

    @property
    def sigma(self) -> float:
        return self.blur_sigma if self.blur_sigma is not None else self.window / 2.0


def window_origins(size: int, window: int, stride: int) -> np.ndarray:
    """Top (or left) coordinates of every window position along an axis of ``size`` pixels."""
    if window > size:
        raise ValueError(f"occlusion window {window} px is larger than the {size}-px image")
    return np.arange(0, size - window + 1, stride, dtype=np.int32)


@dataclasses.dataclass(frozen=True)
class OcclusionResult:
    """Heatmaps of N images: ``drops[n, i, j]`` for the window at ``(ys[i], xs[j])``."""

    probabilities: np.ndarray  # [N, K] unoccluded softmax
    targets: np.ndarray  # [N] class whose probability was tracked
    drops: np.ndarray  # [N, len(ys), len(xs)] unoccluded minus occluded target probability
    ys: np.ndarray
    xs: np.ndarray
    window: int
    image_shape: tuple[int, int]  # (H, W) of the model input

    def peak_boxes(self) -> np.ndarray:
        """``[N, 4]`` (y0, x0, y1, x1) of each image's largest-drop window (first if tied)."""
        n, _, gx = self.drops.shape
        flat = np.argmax(self.drops.reshape(n, -1), axis=1)
        y0, x0 = self.ys[flat // gx], self.xs[flat % gx]
        return np.stack([y0, x0, y0 + self.window, x0 + self.window], axis=1)

    def pixel_maps(self) -> np.ndarray:
        """``[N, H, W]``: each pixel's mean drop over the windows that cover it; a pixel no
        window covers (stride > window, or the last rows/columns) takes the nearest window's."""
        n = self.drops.shape[0]
        h, w = self.image_shape
        placed = np.zeros((n, h, w))
        placed[:, self.ys[:, None], self.xs[None, :]] = self.drops
        hits = np.zeros((h, w))
        hits[self.ys[:, None], self.xs[None, :]] = 1.0
        total = _box_sum(placed, self.window)
        count = _box_sum(hits, self.window)
        centre = (self.window - 1) / 2.0
        near_y = np.abs(np.arange(h)[:, None] - (self.ys + centre)[None, :]).argmin(axis=1)
        near_x = np.abs(np.arange(w)[:, None] - (self.xs + centre)[None, :]).argmin(axis=1)
        nearest = self.drops[:, near_y[:, None], near_x[None, :]]
        return np.where(count > 0, total / np.maximum(count, 1.0), nearest).astype(np.float32)


def _box_sum(a: np.ndarray, window: int) -> np.ndarray:
    """``out[..., y, x] = a[..., y-window+1 : y+1, x-window+1 : x+1].sum()`` (clipped at 0)."""
    h, w = a.shape[-2:]
    c = np.cumsum(np.cumsum(a, axis=-2), axis=-1)
    c = np.pad(c, [(0, 0)] * (a.ndim - 2) + [(window, 0), (window, 0)])
    return c[..., window:, window:] - c[..., :h, window:] - c[..., window:, :w] + c[..., :h, :w]


LESION_RULES = ("overlap", "centre")


def lesion_hits(result: OcclusionResult, boxes: np.ndarray, rule: str = "overlap") -> np.ndarray:
    """Whether each image's largest-drop window falls on its lesion box.

    ``boxes``: ``[N, 4]`` (y0, x0, y1, x1) in model-input pixels, end-exclusive; rows with a
    negative y0 (no lesion) give False. ``rule="overlap"``: the window covers part of the
    lesion (occluding there hides some of it); ``"centre"``: the window's centre lies inside
    the box (stricter; thin lesions such as drusen often miss it by a few pixels). The paper's
    check (94.7%) was a reader's judgement that the region matched the pathology.
    """
    if rule not in LESION_RULES:
        raise ValueError(f"rule {rule!r} is not one of {LESION_RULES}")
    boxes = np.asarray(boxes, dtype=np.float64)
    peak = result.peak_boxes().astype(np.float64)
    if rule == "centre":
        cy, cx = (peak[:, 0] + peak[:, 2]) / 2.0, (peak[:, 1] + peak[:, 3]) / 2.0
        on = (cy >= boxes[:, 0]) & (cy < boxes[:, 2]) & (cx >= boxes[:, 1]) & (cx < boxes[:, 3])
    else:
        on = (np.minimum(peak[:, 2], boxes[:, 2]) > np.maximum(peak[:, 0], boxes[:, 0])) & (
            np.minimum(peak[:, 3], boxes[:, 3]) > np.maximum(peak[:, 1], boxes[:, 1])
        )
    return on & (boxes[:, 0] >= 0)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """``[size, size]`` row-normalised Gaussian weights: ``A @ v`` blurs v, edges not darkened."""
    d = np.arange(size)[:, None] - np.arange(size)[None, :]
    a = np.exp(-0.5 * (d / max(sigma, 1e-6)) ** 2)
    return (a / a.sum(axis=1, keepdims=True)).astype(np.float32)


def fill_images(images: jax.Array, config: OcclusionConfig) -> jax.Array:
    """What the box shows, per image: ``[G, H, W, C]`` float32."""
    if config.fill == "zero":
        return jnp.zeros_like(images)
    if config.fill == "mean":
        return jnp.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)
    _, h, w, _ = images.shape
    rows, cols = _gaussian_matrix(h, config.sigma), _gaussian_matrix(w, config.sigma)
    return jnp.einsum("yh,ghwc,xw->gyxc", rows, images, cols, precision=jax.lax.Precision.HIGHEST)


def _occlude(image: jax.Array, fill: jax.Array, origin: jax.Array, window: int) -> jax.Array:
    """One occluded copy: ``fill`` inside the window at ``origin`` (y0, x0), ``image`` outside."""
    h, w, _ = image.shape
    yy = jnp.arange(h)[:, None]
    xx = jnp.arange(w)[None, :]
    inside = (
        (yy >= origin[0])
        & (yy < origin[0] + window)
        & (xx >= origin[1])
        & (xx < origin[1] + window)
    )
    return jnp.where(inside[..., None], fill, image)


def _logits(apply_fn: ApplyFn, variables: Any, images: jax.Array) -> jax.Array:
    out = apply_fn(variables, images)
    return out[0] if isinstance(out, tuple) else out


@functools.lru_cache(maxsize=16)
def _compiled(apply_fn: ApplyFn, config: OcclusionConfig, mesh: Mesh):
    """The two jitted programs for one (model, occluder, mesh): plain softmax and chunk drops.

    The softmax is the engine's one sharded forward (``engine.steps.shard_forward``).
    """
    replicated, batch = replicated_sharding(mesh), batch_sharding(mesh)

    def probabilities(variables, images):
        logits = _logits(apply_fn, variables, images.astype(jnp.float32))
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

    softmax = shard_forward(probabilities, mesh)

    @functools.partial(
        jax.jit,
        in_shardings=(replicated, replicated, batch, batch, batch),
        out_shardings=batch,
    )
    def occluded_target_probs(variables, group, slots, origins, targets):
        group = group.astype(jnp.float32)
        fills = fill_images(group, config)
        copies = jax.vmap(lambda s, o: _occlude(group[s], fills[s], o, config.window))(
            slots, origins
        )
        copies = jax.lax.with_sharding_constraint(copies, batch)
        probs = jax.nn.softmax(_logits(apply_fn, variables, copies).astype(jnp.float32), axis=-1)
        return jnp.take_along_axis(probs, targets[:, None], axis=1)[:, 0]

    return softmax, occluded_target_probs


def unoccluded_probabilities(
    apply_fn: ApplyFn, variables: Any, images: np.ndarray, *, config: OcclusionConfig, mesh: Mesh
) -> np.ndarray:
    """``[N, K]`` softmax of the plain images, batched by ``max_batch`` over the mesh
    (``engine.predictor.host_batched``: one image costs one forward)."""
    softmax, _ = _compiled(apply_fn, config, mesh)
    variables = _place_replicated(variables, mesh)
    return host_batched(softmax, variables, images, max_batch=config.max_batch, mesh=mesh)


def _place_replicated(variables: Any, mesh: Mesh) -> Any:
    """Put the model variables on every device once (no-op when already there), so that each
    chunk's call does not copy them again."""
    return jax.device_put(variables, replicated_sharding(mesh))


def _round_to_devices(n: int, devices: int) -> int:
    """The largest multiple of ``devices`` not above ``n`` (at least ``devices``)."""
    return max(devices, (n // devices) * devices)


def occlusion_sensitivity(
    apply_fn: ApplyFn,
    variables: Any,
    images: np.ndarray,
    *,
    config: OcclusionConfig = OcclusionConfig(),
    targets: np.ndarray | None = None,
    mesh: Mesh | None = None,
    progress: ProgressFn | None = None,
) -> OcclusionResult:
    """Occlusion heatmaps of ``images`` (``[N, H, W, C]``, the pixel space ``apply_fn`` takes).

    ``apply_fn(variables, x)`` returns logits (or ``(logits, extras)``) for a float32 batch;
    it must not depend on other batch members (eval mode). ``targets``: the class tracked per
    image; default the unoccluded prediction. ``apply_fn`` and ``config`` key a compilation
    cache: reuse the same function object across calls to avoid recompiling.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    mesh = mesh if mesh is not None else make_mesh()
    variables = _place_replicated(variables, mesh)
    n, h, w, _ = images.shape
    ys, xs = (
        window_origins(h, config.window, config.stride),
        window_origins(w, config.window, config.stride),
    )
    probabilities = unoccluded_probabilities(apply_fn, variables, images, config=config, mesh=mesh)
    if targets is None:
        targets = np.argmax(probabilities, axis=1)
    targets = np.asarray(targets, dtype=np.int32)
    if (
        targets.shape != (n,)
        or targets.min(initial=0) < 0
        or targets.max(initial=0) >= probabilities.shape[1]
    ):
        raise ValueError(
            f"targets must be {n} class indices below {probabilities.shape[1]}, got {targets}"
        )

    if config.method != "full":
        occluded = _incremental_occluded(
            apply_fn,
            variables,
            images,
            targets,
            config,
            mesh,
            progress,
            (len(ys), len(xs)),
            probabilities[np.arange(n), targets],
        )
        base = probabilities[np.arange(n), targets]
        return OcclusionResult(
            probabilities=probabilities,
            targets=targets,
            drops=(base[:, None, None] - occluded).astype(np.float32),
            ys=ys,
            xs=xs,
            window=config.window,
            image_shape=(h, w),
        )

    origins = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    per_image = len(origins)
    total = n * per_image
    chunk = _round_to_devices(config.max_batch, mesh.size)
    # Images a run of `chunk` pairs can touch; independent of N so that one compilation
    # (e.g. a warm-up on one image) serves every call with the same shapes and config.
    group_size = -(-chunk // per_image) + 1
    _, occluded_target_probs = _compiled(apply_fn, config, mesh)

    occluded = np.empty(total, np.float32)
    in_flight: list[tuple[int, jax.Array]] = []

    def collect_oldest() -> None:
        start, values = in_flight.pop(0)
        got = np.asarray(values)
        occluded[start : start + chunk] = got[: min(chunk, total - start)]
        if progress is not None:
            progress(min(start + chunk, total), total)

    for start in range(0, total, chunk):
        pair = np.arange(start, start + chunk)
        pair = np.where(pair < total, pair, start)  # padding repeats a real pair, then is dropped
        image_index = pair // per_image
        first = int(image_index[0])
        group = np.zeros((group_size, *images.shape[1:]), images.dtype)
        part = images[first : first + group_size]
        group[: len(part)] = part
        in_flight.append(
            (
                start,
                occluded_target_probs(
                    variables,
                    group,
                    (image_index - first).astype(np.int32),
                    origins[pair % per_image],
                    targets[image_index],
                ),
            )
        )
        if len(in_flight) > 2:
            collect_oldest()
    while in_flight:
        collect_oldest()

    base = probabilities[np.arange(n), targets]
    drops = base[:, None] - occluded.reshape(n, per_image)
    return OcclusionResult(
        probabilities=probabilities,
        targets=targets,
        drops=drops.reshape(n, len(ys), len(xs)).astype(np.float32),
        ys=ys,
        xs=xs,
        window=config.window,
        image_shape=(h, w),
    )


def _incremental_occluded(
    apply_fn: ApplyFn,
    variables: Any,
    images: np.ndarray,
    targets: np.ndarray,
    config: OcclusionConfig,
    mesh: Mesh,
    progress: ProgressFn | None,
    grid: tuple[int, int],
    base: np.ndarray,
) -> np.ndarray:
    """``[N, gy, gx]`` occluded target probabilities by incremental inference; with
    drill-down, the coarse grid first, then the full grid around its largest drops."""
    # Local import: incremental_maps builds on this module's OcclusionConfig and fills.
    from engine.occlusion import incremental_maps as inc

    tau, fraction = config.approximation
    n = len(images)
    run = functools.partial(
        inc.window_probabilities,
        apply_fn,
        variables,
        images,
        targets=targets,
        config=config,
        mesh=mesh,
        tau=tau,
        progress=progress,
    )
    if fraction is None:
        every = np.stack(np.meshgrid(*map(np.arange, grid), indexing="ij"), -1).reshape(-1, 2)
        got = run([every] * n)
        return np.stack(got).reshape(n, *grid)
    coarse_pairs, axes = inc.drill_down_pairs(grid, config.drill_down_factor)
    coarse = run([coarse_pairs] * n)
    maps, fine_pairs = [], []
    for i in range(n):
        coarse_map = coarse[i].reshape(len(axes[0]), len(axes[1]))
        maps.append(inc.interpolate_coarse(coarse_map, axes, grid))
        fine_pairs.append(
            inc.refine_pairs(base[i] - coarse_map, axes, grid, fraction, config.drill_down_factor)
        )
    fine = run(fine_pairs)
    for i in range(n):
        maps[i][fine_pairs[i][:, 0], fine_pairs[i][:, 1]] = fine[i]
    return np.stack(maps)
