"""Forward cost of every model family at its default resolution: compile time, images/s,
parameters and FLOPs per image (from XLA's cost analysis), as JSON lines.

    python -m launch.benchmark --what=models [--families resnet50 small_cnn] [--batch 8]

Why: issue 2 asks for the measured cost of each family on this machine, and ANCHORS.md gives
the published FLOP/parameter counts to check the implementations against (ratio ~1.0).
Forward = eval mode (BatchNorm running statistics), logits only, jitted on one device,
``block_until_ready``; compile = lowering + XLA compilation; throughput = batch / best of
``--repeat`` timed calls after one warm-up call.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import models
from benchmarks.report import compiled_flops, emit, machine
from engine.progress import ProgressBar

# The families issue 2 names; any not registered is reported as missing, never skipped silently.
EXPECTED_FAMILIES = ("small_cnn", "resnet18", "resnet50", "inception_v3", "efficientnet_lite0")

# ANCHORS.md "Model cost": forward GFLOPs per image (2 x multiply-adds) and parameters.
ANCHOR_COST: dict[str, tuple[float, float]] = {
    "resnet50": (8.22, 25.6e6),
    "inception_v3": (11.46, 23.8e6),  # 27.2 M with the auxiliary head
    "efficientnet_lite0": (0.8, 4.7e6),
}


def param_count(model: nnx.Module) -> int:
    """Trainable parameters (BatchNorm running statistics excluded, as torchvision counts)."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def measure(arch: str, batch: int, repeat: int) -> dict[str, float]:
    """Build ``arch`` randomly initialised and time its jitted eval-mode forward pass."""
    meta = models.metadata_for(arch)
    size = meta.input_size
    t0 = time.perf_counter()
    model = models.create(arch, rngs=nnx.Rngs(0))
    model.eval()
    init_s = time.perf_counter() - t0
    graphdef, state = nnx.split(model)

    def forward(state, images):
        logits, _ = nnx.merge(graphdef, state)(images)
        return logits

    images = jnp.asarray(
        np.random.default_rng(0).normal(size=(batch, size, size, meta.in_channels)), jnp.float32
    )
    t0 = time.perf_counter()
    compiled = jax.jit(forward).lower(state, images).compile()
    compile_s = time.perf_counter() - t0
    flops = compiled_flops(compiled.cost_analysis())

    compiled(state, images).block_until_ready()  # warm-up, excluded
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        compiled(state, images).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return {
        "input_size": size,
        "init_s": init_s,
        "compile_s": compile_s,
        "images_per_s": batch / best,
        "params": param_count(model),
        "gflops_per_image": flops / batch / 1e9,
    }


def _versus(value: float, anchor: float | None, label: str) -> dict[str, object]:
    """``vs``/``ratio`` fields against an ANCHORS.md figure, or nothing when there is none."""
    return {} if anchor is None else {"vs": f"ANCHORS.md {label}", "ratio": value / anchor}


def _emit_family(arch: str, result: dict[str, float], batch: int) -> None:
    tags = {"model": arch, "input_size": int(result["input_size"]), "batch": batch}
    gflops, params = result["gflops_per_image"], result["params"]
    anchor_gflops, anchor_params = ANCHOR_COST.get(arch, (None, None))
    params_label = f"{anchor_params / 1e6:.1f} M" if anchor_params else ""
    emit(
        f"models/{arch}/compile",
        result["compile_s"],
        "s",
        init_s=round(result["init_s"], 3),
        **tags,
    )
    emit(f"models/{arch}/forward", result["images_per_s"], "images/s", **tags)
    emit(
        f"models/{arch}/params",
        params,
        "params",
        **_versus(params, anchor_params, params_label),
        **tags,
    )
    emit(
        f"models/{arch}/flops",
        gflops,
        "GFLOPs/image",
        **_versus(gflops, anchor_gflops, f"{anchor_gflops} GFLOPs"),
        **tags,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launch.benchmark --what=models",
        description="Per model: compile time, forward images/s, parameters and GFLOPs per image "
        "(XLA cost analysis) at the model's default input size, on the first JAX device.",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        metavar="NAME",
        help="registered model names to measure (default: every registered model)",
    )
    parser.add_argument("--batch", type=int, default=8, help="images per forward call (default 8)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="timed forward calls after one warm-up; the best counts (default 5)",
    )
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeat < 1:
        parser.error("--batch and --repeat must be positive")

    registered = models.list_models()
    if args.families:
        unknown = [name for name in args.families if name not in registered]
        if unknown:
            parser.error(
                f"not registered: {', '.join(unknown)}; registered: {', '.join(registered)}"
            )
        families = list(args.families)
    else:
        families = registered
        missing = [name for name in EXPECTED_FAMILIES if name not in registered]
        if missing:
            print(f"[models] not registered, not measured: {', '.join(missing)}", file=sys.stderr)
            emit("models/missing_families", len(missing), "families", missing=missing)

    info = machine()
    emit("models/machine", info["device_count"], "devices", **info)
    progress = ProgressBar(len(families), label="models", unit="families", stream=sys.stderr)
    for i, arch in enumerate(families, 1):
        progress.message(f"[models] {arch}: build, compile, time ...")
        _emit_family(arch, measure(arch, args.batch, args.repeat), args.batch)
        progress.update(i, {})
    progress.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
