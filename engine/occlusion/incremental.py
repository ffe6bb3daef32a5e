"""Incremental inference of a CNN under a small input change (Krypton's idea, in JAX).

Why: an occluded copy differs from its image only inside the occluding box, so in every layer
only that box's projective field changes. Caching every layer's output for the unoccluded
image once, and recomputing per occluded copy only the changed patch of each layer (from the
patch's context in the cached input), does the exact same maths with a fraction of the FLOPs
(Nakandala, Kumar, Papakonstantinou, "Incremental and approximate inference for faster
occlusion-based deep CNN explanations", SIGMOD 2019).

How, generically: the model's forward for one image is traced to a jaxpr (nested calls
inlined) and interpreted equation by equation. Every value is one of
- ``Full``: equal to its value for the unoccluded image (the cache); nothing is computed;
- ``Patch``: the cached value except inside a box, whose contents are carried;
- ``Dense``: a whole new value (after global pooling, or a primitive without a patch rule).
Rules: a convolution or pooling window (``conv_general_dilated``, ``reduce_window_*``) maps the
input box to the outputs whose receptive field meets it, reads their context from the cached
(padded) input with the input patch written over it, and applies the same primitive with
``VALID`` padding to that context; elementwise primitives apply to the patch (boxes of several
patched operands are merged into their hull); channel concatenation merges boxes; a spatial
``reduce_sum`` (global average pooling) becomes ``cached sum + sum(patch - cached patch)``;
anything else materialises the full tensor (exact, only slower; counted in ``Stats``).

Box sizes are static: they depend only on the window size, the layer shapes and the set of
window origins, and are computed on the host (numpy) per axis for every window origin, once
per (model, input size, window, stride). The per-window start of each box is a table lookup,
so the per-window function has static shapes and is ``vmap``-ed over window positions.
Boxes clipped at the image borders keep their static size (they slide inside the map), so
windows touching a border stay exact.

Approximation (``tau``): Krypton's projective-field threshold. A window layer's output box is
capped at ``ceil(tau * side)`` pixels per axis, centred on the exact box; the changes that
fall outside are dropped (the cached values are used there).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from models.layers import depthwise_conv_general_dilated, depthwise_override

# Primitives applied elementwise (operands of equal shape, or broadcast along size-1 axes).
POINTWISE = frozenset(
    [
        "abs",
        "add",
        "and",
        "atan2",
        "cbrt",
        "ceil",
        "clamp",
        "convert_element_type",
        "copy",
        "copy_p",
        "cos",
        "cosh",
        "div",
        "eq",
        "erf",
        "erf_inv",
        "erfc",
        "exp",
        "exp2",
        "expm1",
        "floor",
        "ge",
        "gt",
        "integer_pow",
        "is_finite",
        "le",
        "log",
        "log1p",
        "logistic",
        "lt",
        "max",
        "min",
        "mul",
        "ne",
        "neg",
        "nextafter",
        "not",
        "or",
        "pow",
        "reduce_precision",
        "rem",
        "round",
        "rsqrt",
        "select_n",
        "sign",
        "sin",
        "sinh",
        "sqrt",
        "square",
        "stop_gradient",
        "sub",
        "tan",
        "tanh",
        "xor",
    ]
)
INLINED = (
    "jit",
    "pjit",
    "closed_call",
    "core_call",
    "custom_jvp_call",
    "custom_vjp_call",
    "custom_vjp_call_jaxpr",
    "remat",
    "checkpoint",
)


# ----------------------------------------------------------------------------- flat program


@dataclasses.dataclass(frozen=True)
class Const:
    """A literal or closed-over constant operand."""

    value: Any


@dataclasses.dataclass(frozen=True)
class FlatEqn:
    prim: Any
    inputs: tuple[int | Const, ...]
    outputs: tuple[int, ...]
    params: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class FlatProgram:
    """A jaxpr with every nested call inlined; variables are numbered."""

    inputs: tuple[int, ...]
    eqns: tuple[FlatEqn, ...]
    outputs: tuple[int | Const, ...]


def _inner_jaxpr(eqn) -> Any | None:
    if eqn.primitive.name not in INLINED:
        return None
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        inner = eqn.params.get(key)
        if inner is not None and (hasattr(inner, "jaxpr") or hasattr(inner, "eqns")):
            return inner
    return None


def flatten(closed: Any) -> FlatProgram:
    """Inline every nested call of a ``ClosedJaxpr`` into one numbered equation list."""
    counter = iter(range(1 << 62))
    eqns: list[FlatEqn] = []

    def atom(a, names):
        if hasattr(a, "val") and not hasattr(a, "count"):  # Literal
            return Const(a.val)
        return names[a]

    def walk(jaxpr, consts, args, names):
        for v, c in zip(jaxpr.constvars, consts, strict=True):
            names[v] = Const(c)
        for v, a in zip(jaxpr.invars, args, strict=True):
            names[v] = a
        for eqn in jaxpr.eqns:
            ins = [atom(a, names) for a in eqn.invars]
            inner = _inner_jaxpr(eqn)
            if inner is not None:
                inner_jaxpr = inner.jaxpr if hasattr(inner, "jaxpr") else inner
                inner_consts = inner.consts if hasattr(inner, "consts") else ()
                n_extra = len(ins) - len(inner_jaxpr.invars)  # custom_vjp: leading consts
                outs = walk(inner_jaxpr, inner_consts, ins[n_extra:], {})
                for v, o in zip(eqn.outvars, outs, strict=True):
                    names[v] = o
                continue
            outs = tuple(next(counter) for _ in eqn.outvars)
            for v, o in zip(eqn.outvars, outs, strict=True):
                names[v] = o
            eqns.append(FlatEqn(eqn.primitive, tuple(ins), outs, dict(eqn.params)))
        return [atom(a, names) for a in jaxpr.outvars]

    inputs = tuple(next(counter) for _ in closed.jaxpr.invars)
    outputs = walk(closed.jaxpr, closed.consts, list(inputs), {})
    return FlatProgram(inputs, tuple(eqns), tuple(outputs))


def _bind(eqn: FlatEqn, args: Sequence[Any]) -> list[Any]:
    """Apply one primitive; depthwise convolutions go through the backend's fast form."""
    if eqn.prim.name == "conv_general_dilated" and eqn.params["feature_group_count"] > 1:
        p = eqn.params
        out = depthwise_conv_general_dilated(
            args[0],
            args[1],
            p["window_strides"],
            p["padding"],
            lhs_dilation=p["lhs_dilation"],
            rhs_dilation=p["rhs_dilation"],
            dimension_numbers=p["dimension_numbers"],
            feature_group_count=p["feature_group_count"],
            batch_group_count=p["batch_group_count"],
            precision=p["precision"],
            preferred_element_type=p["preferred_element_type"],
        )
        return [out]
    out = eqn.prim.bind(*args, **eqn.params)
    return list(out) if eqn.prim.multiple_results else [out]


def evaluate(program: FlatProgram, args: Sequence[Any]) -> dict[int, Any]:
    """Every variable's value for ``args`` (the cache of the unoccluded image)."""
    env: dict[int, Any] = dict(zip(program.inputs, args, strict=True))
    for eqn in program.eqns:
        vals = [a.value if isinstance(a, Const) else env[a] for a in eqn.inputs]
        for o, v in zip(eqn.outputs, _bind(eqn, vals), strict=True):
            env[o] = v
    return env


# ----------------------------------------------------------------------------- boxes


@dataclasses.dataclass(frozen=True)
class Axis:
    """A box along one spatial axis, for every window origin: ``starts[g]`` and one ``size``."""

    starts: np.ndarray  # int32 [G]
    size: int

    def same_as(self, other: Axis) -> bool:
        return self.size == other.size and np.array_equal(self.starts, other.starts)


def _clip_axis(lo: np.ndarray, hi: np.ndarray, length: int, cap: int | None) -> Axis:
    """The static box covering ``[lo[g], hi[g])`` for every g (clipped to ``[0, length)``),
    capped at ``cap`` pixels around its centre when given."""
    lo, hi = np.maximum(lo, 0), np.minimum(hi, length)
    size = int(max(1, (hi - lo).max()))
    centre = (lo + hi) / 2.0
    if cap is not None and size > cap:
        size = cap
        lo = np.floor(centre - size / 2.0).astype(np.int64)
    size = min(size, length)
    starts = np.clip(lo, 0, length - size).astype(np.int32)
    return Axis(starts, size)


def _union(axes: Sequence[Axis], length: int, cap: int | None) -> Axis:
    lo = np.min([a.starts for a in axes], axis=0)
    hi = np.max([a.starts + a.size for a in axes], axis=0)
    return _clip_axis(lo, hi, length, cap)


def _window_axis(
    box: Axis,
    length_out: int,
    kernel: int,
    stride: int,
    dilation: int,
    pad_lo: int,
    cap: int | None,
) -> Axis:
    """Outputs of a window layer whose receptive field meets the input box."""
    reach = (kernel - 1) * dilation
    lo = -((reach - box.starts - pad_lo) // stride)  # ceil((start + pad_lo - reach) / stride)
    hi = (box.starts + box.size - 1 + pad_lo) // stride + 1
    return _clip_axis(lo, np.maximum(hi, lo + 1), length_out, cap)


# ----------------------------------------------------------------------------- values


@dataclasses.dataclass
class Full:
    """Unchanged: the cached value."""

    value: Any


@dataclasses.dataclass
class Patch:
    """The cached value ``full`` except inside the box (``data``: ``[1, h, w, C]``)."""

    full: Any
    data: Any
    ys: Axis
    xs: Axis


@dataclasses.dataclass
class Dense:
    """A new value of the whole tensor (per window)."""

    value: Any


@dataclasses.dataclass
class Stats:
    """What the interpreter did: multiply-adds of full vs incremental window layers, fallbacks."""

    full_macs: int = 0
    patch_macs: int = 0
    dense_macs: int = 0
    fallbacks: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def flop_bound(self) -> float:
        """Full recompute's window-layer MACs over the incremental method's."""
        return self.full_macs / max(1, self.patch_macs + self.dense_macs)


def _start(axis: Axis, index: Any) -> Any:
    return jnp.asarray(axis.starts)[index]


class _Window:
    """Per-window context: which window origin (index into the y / x origin tables)."""

    def __init__(self, iy: Any, ix: Any):
        self.iy, self.ix = iy, ix

    def start(self, ys: Axis, xs: Axis) -> tuple[Any, Any]:
        return _start(ys, self.iy), _start(xs, self.ix)


def _materialise(v: Full | Patch | Dense, win: _Window) -> Any:
    if isinstance(v, Full):
        return v.value
    if isinstance(v, Dense):
        return v.value
    sy, sx = win.start(v.ys, v.xs)
    zero = jnp.zeros((), jnp.int32)
    return lax.dynamic_update_slice(v.full, v.data.astype(v.full.dtype), (zero, sy, sx, zero))


def _read(
    v: Full | Patch | Dense,
    win: _Window,
    ys: Axis,
    xs: Axis,
    pads: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
    pad_value: Any = 0,
) -> Any:
    """``v`` on the box (``ys``, ``xs``) given in the coordinates of ``v`` padded by ``pads``
    (with ``pad_value``): ``[1, ys.size, xs.size, C]``."""
    padded = any(p for pair in pads for p in pair)
    if isinstance(v, Patch) and not padded and v.ys.same_as(ys) and v.xs.same_as(xs):
        return v.data
    base = v.value if isinstance(v, Full | Dense) else v.full
    if padded:
        (pt, pb), (pl, pr) = pads
        base = lax.pad(
            base,
            jnp.asarray(pad_value, base.dtype),
            [(0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)],
        )
    sy, sx = win.start(ys, xs)
    zero = jnp.zeros((), jnp.int32)
    c = base.shape[-1]
    out = lax.dynamic_slice(base, (zero, sy, sx, zero), (1, ys.size, xs.size, c))
    if not isinstance(v, Patch):
        return out
    return _overlay(out, v, win, sy - pads[0][0], sx - pads[1][0])


def _overlay(context: Any, v: Patch, win: _Window, sy: Any, sx: Any) -> Any:
    """``context`` (a box of ``v.full`` starting at (sy, sx), unpadded coordinates, possibly
    negative) with ``v``'s patch written over the part of it they share.

    The patch is gathered into context coordinates (rows, then columns, at clipped indices)
    and selected where it lies: gathers of context size, no scatter (slow on XLA:CPU under
    ``vmap``) and no padding of the patch by a context-sized margin (memory)."""
    h, w = v.data.shape[1:3]
    big_h, big_w = context.shape[1:3]
    py, px = win.start(v.ys, v.xs)
    rows = jnp.arange(big_h) + (sy - py)  # patch row under each context row
    cols = jnp.arange(big_w) + (sx - px)
    data = v.data.astype(context.dtype)
    placed = jnp.take(data, jnp.clip(rows, 0, h - 1), axis=1)
    placed = jnp.take(placed, jnp.clip(cols, 0, w - 1), axis=2)
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    return jnp.where(inside[None, :, :, None], placed, context)


# ----------------------------------------------------------------------------- rules


def _is_spatial(shape: Sequence[int], hw: tuple[int, int]) -> bool:
    return len(shape) == 4 and tuple(shape[1:3]) == hw


class Interpreter:
    """Runs a flat program on ``Full`` / ``Patch`` / ``Dense`` values for one window."""

    def __init__(
        self,
        program: FlatProgram,
        cache: dict[int, Any],
        win: _Window,
        tau: float | None,
        stats: Stats,
    ):
        self.program, self.cache, self.win, self.tau, self.stats = program, cache, win, tau, stats

    def cap(self, length: int) -> int | None:
        return None if self.tau is None else max(1, math.ceil(self.tau * length))

    def run(self, inputs: dict[int, Full | Patch | Dense]) -> list[Full | Patch | Dense]:
        env: dict[int, Full | Patch | Dense] = dict(inputs)

        def get(a):
            if isinstance(a, Const):
                return Full(a.value)
            return env.get(a) or Full(self.cache[a])

        for eqn in self.program.eqns:
            args = [get(a) for a in eqn.inputs]
            if all(isinstance(a, Full) for a in args):
                continue  # unchanged: the cache holds it
            outs = self.apply(eqn, args)
            for o, v in zip(eqn.outputs, outs, strict=True):
                env[o] = v
        return [get(a) for a in self.program.outputs]

    # -- dispatch
    def apply(self, eqn: FlatEqn, args: list) -> list:
        name = eqn.prim.name
        if any(isinstance(a, Dense) for a in args):
            return self.dense(eqn, args)
        if name == "conv_general_dilated":
            out = self.conv(eqn, args)
        elif name.startswith("reduce_window"):
            out = self.pool(eqn, args)
        elif name in POINTWISE:
            out = self.pointwise(eqn, args)
        elif name == "concatenate" and eqn.params["dimension"] == 3:
            out = self.concat(eqn, args)
        elif name == "reduce_sum" and tuple(eqn.params["axes"]) == (1, 2):
            out = self.spatial_sum(eqn, args)
        else:
            out = None
        if out is None:
            self.stats.fallbacks[name] = self.stats.fallbacks.get(name, 0) + 1
            return self.dense(eqn, args)
        return out

    def dense(self, eqn: FlatEqn, args: list) -> list:
        if eqn.prim.name == "conv_general_dilated":
            self.stats.dense_macs += self._conv_macs(eqn, None)
        values = [_materialise(a, self.win) for a in args]
        return [Dense(v) for v in _bind(eqn, values)]

    def _conv_macs(self, eqn: FlatEqn, out_hw: tuple[int, int] | None) -> int:
        out = self.cache[eqn.outputs[0]]
        kernel = eqn.inputs[1]
        kshape = (kernel.value if isinstance(kernel, Const) else self.cache[kernel]).shape
        h, w = out_hw or out.shape[1:3]
        return int(h * w * out.shape[3] * int(np.prod(kshape[:3])))

    # -- window layers
    def _window(
        self,
        x: Patch,
        length_in: tuple[int, int],
        out_hw: tuple[int, int],
        kernel: tuple[int, int],
        strides,
        dilation,
        pads,
    ):
        boxes, contexts = [], []
        for a, box in enumerate((x.ys, x.xs)):
            out_axis = _window_axis(
                box, out_hw[a], kernel[a], strides[a], dilation[a], pads[a][0], self.cap(out_hw[a])
            )
            ctx = (out_axis.size - 1) * strides[a] + (kernel[a] - 1) * dilation[a] + 1
            contexts.append(Axis((out_axis.starts * strides[a]).astype(np.int32), ctx))
            boxes.append(out_axis)
        # the context may reach past the padded input's end when the kernel does not tile it
        extra = [
            max(0, int(c.starts.max()) + c.size - (length_in[a] + sum(pads[a])))
            for a, c in enumerate(contexts)
        ]
        full_pads = tuple((pads[a][0], pads[a][1] + extra[a]) for a in range(2))
        return boxes, contexts, full_pads

    def conv(self, eqn: FlatEqn, args: list) -> list | None:
        x, k = args
        p = eqn.params
        if (
            not isinstance(x, Patch)
            or not isinstance(k, Full)
            or any(d != 1 for d in p["lhs_dilation"])
            or p["batch_group_count"] != 1
        ):
            return None
        dn = p["dimension_numbers"]
        if (tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec)) != (
            (0, 3, 1, 2),
            (3, 2, 0, 1),
            (0, 3, 1, 2),
        ):
            return None
        full_out = self.cache[eqn.outputs[0]]
        in_hw = tuple(x.full.shape[1:3])
        pads = p["padding"]
        if isinstance(pads, str):
            return None
        kernel_hw = tuple(k.value.shape[:2])
        (ys, xs), (cy, cx), pads = self._window(
            x,
            in_hw,
            tuple(full_out.shape[1:3]),
            kernel_hw,
            p["window_strides"],
            p["rhs_dilation"],
            pads,
        )
        context = _read(x, self.win, cy, cx, pads, 0)
        params = dict(p, padding=((0, 0), (0, 0)))
        out = _bind(FlatEqn(eqn.prim, eqn.inputs, eqn.outputs, params), [context, k.value])[0]
        assert out.shape[1:3] == (ys.size, xs.size), (out.shape, ys.size, xs.size)
        self.stats.full_macs += self._conv_macs(eqn, None)
        self.stats.patch_macs += self._conv_macs(eqn, (ys.size, xs.size))
        return [Patch(full_out, out, ys, xs)]

    def pool(self, eqn: FlatEqn, args: list) -> list | None:
        p = eqn.params
        x = args[0]
        dims, strides = p["window_dimensions"], p["window_strides"]
        if (
            not isinstance(x, Patch)
            or len(dims) != 4
            or dims[0] != 1
            or dims[3] != 1
            or strides[0] != 1
            or strides[3] != 1
            or any(d != 1 for d in p["base_dilation"])
            or p["window_dilation"][0] != 1
            or p["window_dilation"][3] != 1
            or any(p["padding"][i] != (0, 0) for i in (0, 3))
        ):
            return None
        name = eqn.prim.name
        if name == "reduce_window_max":
            pad_value = -jnp.inf
        elif name == "reduce_window_sum":
            pad_value = 0
        elif name == "reduce_window_min":
            pad_value = jnp.inf
        else:
            return None  # generic reduce_window: init values are operands
        full_out = self.cache[eqn.outputs[0]]
        pads = (tuple(p["padding"][1]), tuple(p["padding"][2]))
        (ys, xs), (cy, cx), pads = self._window(
            x,
            tuple(x.full.shape[1:3]),
            tuple(full_out.shape[1:3]),
            (dims[1], dims[2]),
            (strides[1], strides[2]),
            (p["window_dilation"][1], p["window_dilation"][2]),
            pads,
        )
        context = _read(x, self.win, cy, cx, pads, pad_value)
        params = dict(p, padding=((0, 0),) * 4)
        out = _bind(FlatEqn(eqn.prim, eqn.inputs, eqn.outputs, params), [context])[0]
        return [Patch(full_out, out, ys, xs)]

    # -- elementwise, concatenation, global sums
    def _union_box(self, patches: list[Patch], hw: tuple[int, int]) -> tuple[Axis, Axis]:
        first = patches[0]
        if all(q.ys.same_as(first.ys) and q.xs.same_as(first.xs) for q in patches[1:]):
            return first.ys, first.xs
        return (
            _union([q.ys for q in patches], hw[0], self.cap(hw[0])),
            _union([q.xs for q in patches], hw[1], self.cap(hw[1])),
        )

    def pointwise(self, eqn: FlatEqn, args: list) -> list | None:
        full_out = self.cache[eqn.outputs[0]]
        hw = tuple(full_out.shape[1:3]) if full_out.ndim == 4 else None
        patches = [a for a in args if isinstance(a, Patch)]
        if hw is None or any(not _is_spatial(q.full.shape, hw) for q in patches):
            return None
        ys, xs = self._union_box(patches, hw)
        values = []
        for a in args:
            shape = np.shape(a.value) if isinstance(a, Full) else a.full.shape
            if isinstance(a, Patch) or _is_spatial(shape, hw):
                values.append(_read(a, self.win, ys, xs))
            elif len(shape) == 0 or (len(shape) == 4 and shape[1] == 1 and shape[2] == 1):
                values.append(a.value)
            else:
                return None
        return [Patch(full_out, _bind(eqn, values)[0], ys, xs)]

    def concat(self, eqn: FlatEqn, args: list) -> list | None:
        full_out = self.cache[eqn.outputs[0]]
        hw = tuple(full_out.shape[1:3])
        patches = [a for a in args if isinstance(a, Patch)]
        ys, xs = self._union_box(patches, hw)
        values = [_read(a, self.win, ys, xs) for a in args]
        return [Patch(full_out, _bind(eqn, values)[0], ys, xs)]

    def spatial_sum(self, eqn: FlatEqn, args: list) -> list | None:
        (x,) = args
        if not isinstance(x, Patch):
            return None
        cached = _read(Full(x.full), self.win, x.ys, x.xs)
        delta = jnp.sum(x.data - cached, axis=(1, 2))
        return [Dense(self.cache[eqn.outputs[0]] + delta.astype(x.full.dtype))]


# ----------------------------------------------------------------------------- entry points


@dataclasses.dataclass(frozen=True)
class IncrementalModel:
    """A traced single-image forward, ready for incremental evaluation."""

    program: FlatProgram
    image_index: int  # which program input is the image
    image_shape: tuple[int, ...]

    @classmethod
    def trace(
        cls,
        apply_fn: Callable[[Any, jax.Array], Any],
        variables: Any,
        image_shape: Sequence[int],
        dtype: Any = jnp.float32,
    ) -> IncrementalModel:
        """Trace ``apply_fn(variables, image[None])`` (logits or ``(logits, extras)``), with
        depthwise layers in their native form (one primitive the interpreter knows)."""

        def logits(variables, image):
            out = apply_fn(variables, image)
            return out[0] if isinstance(out, tuple) else out

        shape = (1, *image_shape)
        with depthwise_override("native"):
            closed = jax.make_jaxpr(logits)(variables, jax.ShapeDtypeStruct(shape, dtype))
        program = flatten(closed)
        n_vars = len(jax.tree.leaves(variables))
        return cls(program, n_vars, shape)

    def cache(self, variables: Any, image: jax.Array) -> dict[int, Any]:
        """Every intermediate value for the unoccluded ``image`` (``[1, H, W, C]``)."""
        return evaluate(self.program, [*jax.tree.leaves(variables), image])

    def window_logits(
        self,
        cache: dict[int, Any],
        image: jax.Array,
        fill: jax.Array,
        ys: Axis,
        xs: Axis,
        iy: Any,
        ix: Any,
        *,
        tau: float | None = None,
        stats: Stats | None = None,
    ) -> jax.Array:
        """Logits ``[1, K]`` of ``image`` with ``fill`` inside the input box (``ys``, ``xs``)
        at origin index (``iy``, ``ix``); ``vmap`` over ``iy``/``ix`` for many windows."""
        win = _Window(iy, ix)
        sy, sx = win.start(ys, xs)
        zero = jnp.zeros((), jnp.int32)
        c = image.shape[-1]
        data = lax.dynamic_slice(fill, (zero, sy, sx, zero), (1, ys.size, xs.size, c))
        inputs = {self.program.inputs[self.image_index]: Patch(image, data, ys, xs)}
        interp = Interpreter(self.program, cache, win, tau, stats if stats is not None else Stats())
        (out,) = interp.run(inputs)
        return out.value if isinstance(out, Full | Dense) else _materialise(out, win)


def window_axis(origins: np.ndarray, window: int, length: int) -> Axis:
    """The occluding box along one axis for every origin."""
    del length
    return Axis(np.asarray(origins, np.int32), int(window))


def flop_bound(
    model: IncrementalModel,
    variables: Any,
    origins_y: np.ndarray,
    origins_x: np.ndarray,
    window: int,
    tau: float | None = None,
) -> Stats:
    """Multiply-adds of full recompute vs the incremental method (from the layer shapes, by
    tracing one window abstractly), and the primitives that fell back to full tensors."""
    stats = Stats()
    h, w = model.image_shape[1:3]
    ys, xs = window_axis(origins_y, window, h), window_axis(origins_x, window, w)

    def one(variables, image):
        cache = model.cache(variables, image)
        return model.window_logits(cache, image, image, ys, xs, 0, 0, tau=tau, stats=stats)

    jax.eval_shape(one, variables, jax.ShapeDtypeStruct(model.image_shape, jnp.float32))
    return stats
