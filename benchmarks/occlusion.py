"""Occlusion heatmap throughput: engine.occlusion.sweep vs a naive loop, MONAI, and the plain
forward.

    python -m launch.benchmark --what=occlusion --images=2 --model=resnet50 --size=224 \
        --window=20 --stride=17 --max_batch=26 --rounds=3

Prints JSON lines (benchmarks.report.emit). With ``--families`` it runs the per-family
comparison of the occlusion methods instead (``benchmarks.occlusion_methods``). All four
methods run in the same process on the same random uint8 images and an untrained network of
the same shape (throughput does not depend on the weights), interleaved over ``--rounds``
rounds (the machine is shared: a busy moment then slows every method). Rates: each method's
best round; ratios: the median of the per-round ratios (``per_round`` and ``best_vs_best`` are
printed too):
- ``engine``: :func:`engine.occlusion.sweep.occlusion_sensitivity` over all N images in one call
  (timed after a warm-up that compiles both programs), with ``--method`` (default the
  engine's: incremental);
- ``naive``: one occluded image per jitted forward, occlusion made in numpy on the host (the
  same ``--fill`` as the engine), over every window of ``--naive_images`` images;
- ``monai``: ``monai.visualize.OcclusionSensitivity`` (one image per call, ``n_batch`` =
  ``--max_batch``, fill ``(0 - mean) / std``: black, as the engine's ``zero``, in MONAI's
  normalised input) on MONAI's torch ResNet with torchvision's layout, with an overlap chosen
  so that its windows are exactly ours (requires ``stride <= window`` and the stride to divide
  ``size - window``; checked before, and the copies its network saw are counted each call);
- ``ceiling``: the same jitted softmax forward on full ``--max_batch`` batches, no occlusion,
  over as many images as the engine's occluded copies.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import models
from benchmarks.report import emit, machine
from engine.mesh import make_mesh
from engine.occlusion import sweep
from engine.occlusion.sweep import OcclusionConfig, fill_images, window_origins
from engine.predictor import Predictor
from engine.progress import counter
from models.metadata import WeightMetadata

MEAN, STD = 0.5, 0.25  # the normalisation every method applies to the uint8 images
BLACK_NORMALISED = (0.0 - MEAN) / STD  # a black (0) pixel after normalisation: MONAI's fill

MONAI_FAMILIES = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.benchmark --what=occlusion",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--images", type=int, default=2, help="images per heatmap run (default 2)")
    p.add_argument(
        "--naive_images", type=int, default=1, help="images for the naive loop (default 1)"
    )
    p.add_argument("--model", default="resnet50", help="registered model name (default resnet50)")
    p.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    p.add_argument("--channels", type=int, default=3, help="input channels (default 3)")
    p.add_argument("--classes", type=int, default=4, help="output classes (default 4, as OCT)")
    p.add_argument("--window", type=int, default=20, help="occluding box side (default 20)")
    p.add_argument(
        "--stride", type=int, default=17, help="window step (default 17: divides 224-20)"
    )
    p.add_argument(
        "--max_batch",
        type=int,
        default=26,
        help="occluded copies per forward (default 26: divides 2 x 169 copies, no padding)",
    )
    p.add_argument("--fill", default="zero", choices=("zero", "mean", "blur"), help="box content")
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="interleaved rounds of every method; the best of each is kept (default 2)",
    )
    p.add_argument("--skip", default="", help="comma list of peers not to run: naive,monai,ceiling")
    p.add_argument(
        "--method",
        default=None,
        choices=("full", "incremental", "approximate"),
        help="the engine's occlusion method (default: the engine's default)",
    )
    return p


def _jax_model(args):
    """(apply_fn, variables) of the engine's one forward (``engine.predictor.Predictor``):
    uint8-range pixels normalised on the device with MEAN/STD."""
    model = models.create(args.model, num_classes=args.classes, in_channels=args.channels)
    meta = WeightMetadata(arch=args.model, mean=(MEAN,) * args.channels, std=(STD,) * args.channels)
    predictor = Predictor(model, meta, make_mesh())
    return predictor.apply_fn, predictor.variables


@dataclasses.dataclass
class Measure:
    """One method's rounds: (seconds, occluded forwards, heatmaps) each."""

    rounds: list[tuple[float, int, float]] = dataclasses.field(default_factory=list)

    def forwards_per_s(self, r: int | None = None) -> float:
        """Round ``r``'s rate, or the best round's."""
        rates = [f / s for s, f, _ in self.rounds]
        return rates[r] if r is not None else max(rates)

    def heatmaps_per_s(self) -> float:
        return max(h / s for s, _, h in self.rounds)

    def best_seconds(self) -> float:
        return min(s for s, _, _ in self.rounds)


def engine_unit(
    args, apply_fn, state, images, windows: int
) -> Callable[[], tuple[float, int, float]]:
    """All N images in one occlusion_sensitivity call (both programs compiled by a warm-up)."""
    config = sweep.OcclusionConfig(
        window=args.window,
        stride=args.stride,
        fill=args.fill,
        max_batch=args.max_batch,
        method=args.method or sweep.DEFAULT_METHOD,
    )
    t = time.perf_counter()
    sweep.occlusion_sensitivity(apply_fn, state, images[:1], config=config)
    sweep.unoccluded_probabilities(apply_fn, state, images, config=config, mesh=make_mesh())
    print(f"[engine] warm-up (compiles) {time.perf_counter() - t:.1f} s", file=sys.stderr)

    def unit() -> tuple[float, int, float]:
        t = time.perf_counter()
        result = sweep.occlusion_sensitivity(
            apply_fn, state, images, config=config, progress=counter("engine", "occluded forwards")
        )
        seconds = time.perf_counter() - t
        assert (
            result.drops.shape[0] * result.drops.shape[1] * result.drops.shape[2]
            == len(images) * windows
        )
        return seconds, len(images) * windows, float(len(images))

    return unit


def naive_unit(
    args, apply_fn, state, images, windows: int
) -> Callable[[], tuple[float, int, float]]:
    """Every window of ``--naive_images`` images, one occluded image per jitted forward.

    The box shows the engine's own ``--fill`` (``engine.occlusion.sweep.fill_images``), so both
    compute the same heatmap; the last call's drops are kept in ``unit.drops`` for tests.
    """
    config = OcclusionConfig(
        window=args.window, stride=args.stride, fill=args.fill, max_batch=args.max_batch
    )
    forward = jax.jit(lambda v, x: jax.nn.softmax(apply_fn(v, x.astype("float32")), axis=-1))
    origins = window_origins(args.size, args.window, args.stride)
    subset = images[: args.naive_images]
    np.asarray(forward(state, subset[:1]))  # compile
    w = args.window

    def unit() -> tuple[float, int, float]:
        t = time.perf_counter()
        forwards = 0
        drops = np.zeros((len(subset), len(origins), len(origins)), np.float32)
        for n, image in enumerate(subset):
            base = np.asarray(forward(state, image[None]))[0]
            target = int(np.argmax(base))
            pixels = image.astype(np.float32)
            fill = np.asarray(fill_images(jnp.asarray(pixels[None]), config))[0]
            for i, y in enumerate(origins):
                for j, x in enumerate(origins):
                    copy = pixels.copy()
                    copy[y : y + w, x : x + w] = fill[y : y + w, x : x + w]
                    occluded = np.asarray(forward(state, copy[None]))[0, target]
                    drops[n, i, j] = base[target] - occluded
                    forwards += 1
            print(f"[naive] {forwards} occluded forwards", file=sys.stderr, flush=True)
        unit.drops = drops
        return time.perf_counter() - t, forwards, float(len(subset))

    return unit


def ceiling_unit(
    args, apply_fn, state, images, windows: int
) -> Callable[[], tuple[float, int, float]]:
    """Plain softmax forwards in full ``--max_batch`` batches (the program the engine uses for
    its unoccluded pass), as many images as the engine's occluded copies: the same work."""
    config = sweep.OcclusionConfig(
        window=args.window, stride=args.stride, fill=args.fill, max_batch=args.max_batch
    )
    mesh = make_mesh()
    copies = np.resize(images, (len(images) * windows, *images.shape[1:]))
    sweep.unoccluded_probabilities(
        apply_fn, state, copies[: args.max_batch], config=config, mesh=mesh
    )

    def unit() -> tuple[float, int, float]:
        t = time.perf_counter()
        sweep.unoccluded_probabilities(apply_fn, state, copies, config=config, mesh=mesh)
        return time.perf_counter() - t, len(copies), len(copies) / windows

    return unit


def monai_unit(
    args, apply_fn, state, images, windows: int
) -> Callable[[], tuple[float, int, float]]:
    """MONAI OcclusionSensitivity, one call per image, torch ResNet of the same shape."""
    del apply_fn, state
    import torch
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval
    from monai.networks.nets.resnet import ResNet, ResNetBlock, ResNetBottleneck
    from monai.visualize import OcclusionSensitivity

    kind, layers = MONAI_FAMILIES[args.model]
    torch.manual_seed(0)
    net = ResNet(
        ResNetBottleneck if kind == "bottleneck" else ResNetBlock,
        list(layers),
        [64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=args.channels,
        conv1_t_size=7,
        conv1_t_stride=2,
        shortcut_type="B",
        num_classes=args.classes,
        bias_downsample=False,
    ).eval()
    overlap = max(
        0.0, 1.0 - (args.stride + 0.5) / args.window
    )  # int(window * (1 - overlap)) == stride
    shape = (args.size, args.size)
    interval = _get_scan_interval(shape, (args.window,) * 2, 2, (overlap,) * 2)
    monai_windows = len(dense_patch_slices(shape, (args.window,) * 2, interval))
    if monai_windows != windows:
        raise SystemExit(
            f"MONAI would use {monai_windows} windows per image, we use {windows}: choose a "
            "stride <= window that divides size - window, or --skip=monai"
        )
    occ = OcclusionSensitivity(
        net,
        mask_size=args.window,
        n_batch=args.max_batch,
        mode=float(BLACK_NORMALISED),
        overlap=overlap,
        verbose=False,
    )
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - MEAN) / STD
    print(f"[monai] torch threads: {torch.get_num_threads()}", file=sys.stderr)
    with torch.no_grad():
        net(x[:1])  # first-call allocations
    seen = {"copies": 0, "min": float("inf")}  # what MONAI actually fed its network

    def count(_module, inputs):
        seen["copies"] += int(inputs[0].shape[0])
        seen["min"] = min(seen["min"], float(inputs[0].min()))

    net.register_forward_pre_hook(count)

    def unit() -> tuple[float, int, float]:
        seen.update(copies=0, min=float("inf"))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # MONAI's indexing deprecation notices
            t = time.perf_counter()
            occ(x[:1])
            seconds = time.perf_counter() - t
        if seen["copies"] != windows:
            raise SystemExit(f"MONAI ran {seen['copies']} occluded copies, we run {windows}")
        unit.seen = dict(seen)
        print(f"[monai] 1 image {seconds:.1f} s", file=sys.stderr, flush=True)
        return seconds, seen["copies"], 1.0

    return unit


UNITS = {"engine": engine_unit, "ceiling": ceiling_unit, "naive": naive_unit, "monai": monai_unit}
TARGETS = {
    "ceiling": ("plain batched forward (ceiling)", ">= 0.8 of it"),
    "naive": ("naive loop, one occluded image per jitted forward", ">= 10x"),
    "monai": ("MONAI OcclusionSensitivity, torch CPU", ">= 2x"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--families" in argv:  # per-family method comparison
        from benchmarks import occlusion_methods  # local: it imports this module

        return occlusion_methods.main(argv)
    args = build_parser().parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if "monai" not in skip and (args.model not in MONAI_FAMILIES or args.fill != "zero"):
        print(
            f"[monai] skipped: needs --fill=zero and one of {sorted(MONAI_FAMILIES)}",
            file=sys.stderr,
        )
        skip.add("monai")
    windows = len(window_origins(args.size, args.window, args.stride)) ** 2
    images = np.random.default_rng(0).integers(
        0, 256, (args.images, args.size, args.size, args.channels), dtype=np.uint8
    )
    setup = dict(
        model=args.model,
        size=args.size,
        channels=args.channels,
        window=args.window,
        stride=args.stride,
        fill=args.fill,
        max_batch=args.max_batch,
        images=args.images,
        windows_per_image=windows,
        method=args.method or "default",
        rounds=args.rounds,
        **machine(),
    )
    apply_fn, state = _jax_model(args)
    names = [n for n in UNITS if n not in skip]
    units = {n: UNITS[n](args, apply_fn, state, images, windows) for n in names}
    measures = {n: Measure() for n in names}
    for r in range(args.rounds):  # interleaved, so a busy moment of the shared CPU hits all methods
        for n in names:
            measures[n].rounds.append(units[n]())
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    ours = measures["engine"]
    emit("occlusion/engine/heatmaps_per_s", ours.heatmaps_per_s(), "heatmaps/s", **setup)
    emit(
        "occlusion/engine/occluded_forwards_per_s",
        ours.forwards_per_s(),
        "forwards/s",
        seconds=round(ours.best_seconds(), 2),
    )
    for n in names[1:]:
        m = measures[n]
        vs, target = TARGETS[n]
        emit(
            f"occlusion/{n}/occluded_forwards_per_s",
            m.forwards_per_s(),
            "forwards/s",
            seconds=round(m.best_seconds(), 2),
            forwards=m.rounds[0][1],
        )
        if n != "ceiling":
            emit(f"occlusion/{n}/heatmaps_per_s", m.heatmaps_per_s(), "heatmaps/s")
        per_round = [ours.forwards_per_s(r) / m.forwards_per_s(r) for r in range(args.rounds)]
        emit(
            f"occlusion/engine_vs_{n}",
            float(np.median(per_round)),
            "x",
            vs=vs,
            ratio=float(np.median(per_round)),
            per_round=[round(x, 3) for x in per_round],
            best_vs_best=round(ours.forwards_per_s() / m.forwards_per_s(), 3),
            target=target,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
