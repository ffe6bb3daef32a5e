"""Occlusion methods compared per family: full recompute, exact incremental, approximate, MONAI.

    python -m launch.benchmark --what=occlusion --families resnet50 inception_v3 \
        [--window 20 --stride 4] [--sample_windows 64] [--tau 0.5] [--rounds 2]

Per family at its default resolution (randomly initialised, 4 classes, eval mode, float32, one
random uint8 image, the engine's normalisation), window ``--window``, stride ``--stride``:
- ``full``: the engine's full-recompute chunk program (``engine.occlusion.sweep``);
- ``incremental``: the exact incremental program (``engine.occlusion.incremental_maps``), whose
  probabilities are checked against ``full`` on the same windows (max abs difference printed);
- ``approximate``: incremental with the projective-field threshold ``--tau``;
- ``monai`` (ResNets, whole maps only): ``monai.visualize.OcclusionSensitivity`` on MONAI's
  torch ResNet of the same shape (``benchmarks.occlusion.monai_unit``).
``--sample_windows K`` times every method on the same K windows of the stride-``--stride``
grid (an evenly spaced sub-grid including the borders; boxes sized for the whole grid), so the
rates are windows/s of the real per-window work on a CPU too slow for whole maps of every
family; 0 = whole maps. Each method's rate is its best of ``--rounds`` interleaved rounds; the
speed-ups are medians of per-round ratios. The FLOP bound is full recompute's multiply-adds over
the incremental method's (``engine.occlusion.incremental.flop_bound``, from the layer shapes), so
``ratio_to_bound`` = measured speed-up / bound.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

import models
from benchmarks.occlusion import _jax_model
from benchmarks.report import emit, machine
from engine.mesh import make_mesh
from engine.occlusion import incremental, sweep
from engine.occlusion import incremental_maps as occlusion_incremental

DEFAULT_FAMILIES = ("small_cnn", "resnet18", "resnet50", "inception_v3", "efficientnet_lite0")


def sub_grid(grid: tuple[int, int], count: int) -> np.ndarray:
    """About ``count`` (iy, ix) pairs spread evenly over the grid, first and last rows/columns
    included (so windows touch every border)."""
    side = max(2, round(np.sqrt(count)))
    axes = [np.unique(np.linspace(0, g - 1, min(side, g)).round().astype(int)) for g in grid]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)


def measure_family(arch: str, args: argparse.Namespace) -> None:
    size = args.size or models.metadata_for(arch).input_size
    model_args = argparse.Namespace(model=arch, classes=4, channels=3)
    apply_fn, state = _jax_model(model_args)
    mesh = make_mesh(1)
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    ys = sweep.window_origins(size, args.window, args.stride)
    grid = (len(ys), len(ys))
    pairs = (
        sub_grid(grid, args.sample_windows)
        if args.sample_windows
        else np.stack(
            np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij"), -1
        ).reshape(-1, 2)
    )
    base = {"window": args.window, "stride": args.stride, "max_batch": args.max_batch}
    configs = {
        "full": sweep.OcclusionConfig(**base, method="full"),
        "incremental": sweep.OcclusionConfig(**base, method="incremental"),
        "approximate": sweep.OcclusionConfig(**base, method="approximate", tau=args.tau),
    }
    probs = sweep.unoccluded_probabilities(
        apply_fn, state, image, config=configs["full"], mesh=mesh
    )
    target = np.argmax(probs, axis=1).astype(np.int32)

    t = time.perf_counter()
    traced = occlusion_incremental.traced_model(apply_fn, state, (size, size, 3))
    exact_stats = incremental.flop_bound(traced, state, ys, ys, args.window)
    approx_stats = incremental.flop_bound(traced, state, ys, ys, args.window, tau=args.tau)
    trace_s = time.perf_counter() - t

    def full_unit():
        _, program = sweep._compiled(apply_fn, configs["full"], mesh)
        chunk = args.max_batch
        out = []
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            padded = np.concatenate([part, np.repeat(part[:1], chunk - len(part), 0)])
            origins = np.stack([ys[padded[:, 0]], ys[padded[:, 1]]], 1).astype(np.int32)
            got = program(
                state, image, np.zeros(chunk, np.int32), origins, np.repeat(target, chunk)
            )
            out.append(np.asarray(got)[: len(part)])
        return np.concatenate(out)

    def incremental_unit(name):
        def unit():
            tau = configs[name].approximation[0]
            return occlusion_incremental.window_probabilities(
                apply_fn, state, image, [pairs], target, config=configs[name], mesh=mesh, tau=tau
            )[0]

        return unit

    units = {
        "full": full_unit,
        "incremental": incremental_unit("incremental"),
        "approximate": incremental_unit("approximate"),
    }
    compile_s = {}
    values = {}
    for name, unit in units.items():  # warm-up: compiles
        t = time.perf_counter()
        values[name] = unit()
        compile_s[name] = time.perf_counter() - t
    seconds = {name: [] for name in units}
    for r in range(args.rounds):
        for name, unit in units.items():
            t = time.perf_counter()
            jax.block_until_ready(unit())
            seconds[name].append(time.perf_counter() - t)
        print(f"[{arch}] round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)

    tags = {
        "model": arch,
        "size": size,
        "window": args.window,
        "stride": args.stride,
        "windows_timed": len(pairs),
        "windows_per_image": grid[0] * grid[1],
    }
    error = float(np.abs(values["incremental"] - values["full"]).max())
    emit(
        f"occlusion/{arch}/incremental_max_abs_error",
        error,
        "probability",
        target="<= 1e-5",
        **tags,
    )
    emit(
        f"occlusion/{arch}/flop_bound",
        exact_stats.flop_bound,
        "x",
        approximate=round(approx_stats.flop_bound, 3),
        tau=args.tau,
        trace_s=round(trace_s, 1),
        fallbacks=exact_stats.fallbacks,
        **tags,
    )
    for name in units:
        rate = len(pairs) / min(seconds[name])
        emit(
            f"occlusion/{arch}/{name}/windows_per_s",
            rate,
            "windows/s",
            seconds=[round(s, 2) for s in seconds[name]],
            compile_s=round(compile_s[name], 1),
            **tags,
        )
    for name, bound in (
        ("incremental", exact_stats.flop_bound),
        ("approximate", approx_stats.flop_bound),
    ):
        per_round = [f / s for f, s in zip(seconds["full"], seconds[name], strict=True)]
        speedup = float(np.median(per_round))
        emit(
            f"occlusion/{arch}/{name}_vs_full",
            speedup,
            "x",
            vs="full recompute",
            ratio=speedup,
            per_round=[round(x, 3) for x in per_round],
            flop_bound=round(bound, 3),
            ratio_to_bound=round(speedup / bound, 3),
            **tags,
        )
    emit(
        f"occlusion/{arch}/full_vs_flop_bound",
        1.0 / exact_stats.flop_bound,
        "x",
        note="full recompute's speed-up is 1 by definition; the exact bound is its inverse cost",
        **tags,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m launch.benchmark --what=occlusion --families ...",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES))
    p.add_argument("--size", type=int, default=None, help="default: each family's own")
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--max_batch", type=int, default=32)
    p.add_argument("--sample_windows", type=int, default=64, help="0 = every window")
    p.add_argument("--tau", type=float, default=0.5, help="approximate method's tau")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    emit("occlusion/machine", 1, "devices", **machine())
    for arch in args.families:
        print(f"[occlusion] {arch} ...", file=sys.stderr, flush=True)
        measure_family(arch, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
