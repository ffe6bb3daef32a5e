"""Depthwise convolution: XLA's native grouped convolution vs the shifted multiply-add form.

    python -m launch.benchmark --what=depthwise [--rounds 3] [--skip_train]

Why: XLA:CPU lowers ``feature_group_count = C`` as a dense grouped convolution, and
EfficientNet-Lite0 (the default backbone) is mostly depthwise layers; ``models.layers`` now
writes them as shifted multiply-adds on CPU. Three comparisons, both forms in the same process,
interleaved over ``--rounds`` rounds (best round each; ratio = median of per-round ratios):
- ``layer``: one 3x3 stride-1 SAME depthwise layer on 16x56x56x144 float32, forward and
  forward + backward (gradients of input and kernel);
- ``lite0_forward``: EfficientNet-Lite0 eval-mode forward, batch ``--batch``, 224 px;
- ``lite0_train``: the engine's train step of EfficientNet-Lite0, every layer trainable
  (``benchmarks.train.measure_jax``, synthetic batch of ``--train_batch``).
The native form is forced with ``models.layers.depthwise_override("native")``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import models
from benchmarks.report import emit, machine
from benchmarks.train import measure_jax, parse
from engine.progress import counter
from models.layers import depthwise_conv, depthwise_override

FORMS = ("native", "shifted")


def _best_ms(fn: Callable[[], object], repeat: int) -> float:
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def layer_units(repeat: int) -> dict[str, Callable[[], float]]:
    """``{(form, pass): unit}``: each unit returns one round's best time in ms."""

    x = jax.random.normal(jax.random.key(0), (16, 56, 56, 144), jnp.float32)
    k = jax.random.normal(jax.random.key(1), (3, 3, 1, 144), jnp.float32)
    units = {}
    for form in FORMS:

        def f(x, k, form=form):
            return depthwise_conv(x, k, padding="SAME", impl=form)

        fwd = jax.jit(f)
        both = jax.jit(jax.value_and_grad(lambda x, k, f=f: jnp.sum(f(x, k) ** 2), argnums=(0, 1)))
        units[f"layer_forward/{form}"] = lambda fwd=fwd: _best_ms(lambda: fwd(x, k), repeat)
        units[f"layer_forward_backward/{form}"] = lambda both=both: _best_ms(
            lambda: both(x, k), repeat
        )
    return units


def lite0_forward_units(batch: int, repeat: int) -> dict[str, Callable[[], float]]:
    model = models.create("efficientnet_lite0", rngs=nnx.Rngs(0))
    model.eval()
    graphdef, state = nnx.split(model)
    images = jnp.asarray(np.random.default_rng(0).normal(size=(batch, 224, 224, 3)), jnp.float32)
    units = {}
    for form in FORMS:
        with depthwise_override(form):
            compiled = (
                jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)[0]).lower(state, images).compile()
            )
        units[f"lite0_forward/{form}"] = lambda c=compiled: _best_ms(
            lambda: c(state, images), repeat
        )
    return units


def lite0_train(form: str, batch: int) -> dict[str, float]:
    args = parse(
        [
            "--model=efficientnet_lite0",
            f"--batch={batch}",
            "--synthetic",
            "--steps=3",
            "--warmup=1",
            "--devices=1",
            "--peer=none",
        ]
    )
    with depthwise_override(form):
        return measure_jax(args)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m launch.benchmark --what=depthwise",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--repeat", type=int, default=3, help="timed calls per round (default 3)")
    p.add_argument("--batch", type=int, default=8, help="Lite0 forward batch (default 8)")
    p.add_argument("--train_batch", type=int, default=16, help="Lite0 train batch (default 16)")
    p.add_argument("--skip_train", action="store_true", help="no Lite0 train-step comparison")
    args = p.parse_args(argv)

    info = machine()
    emit(
        "depthwise/machine", info["device_count"], "devices", backend=jax.default_backend(), **info
    )
    units = layer_units(args.repeat) | lite0_forward_units(args.batch, args.repeat)
    rounds: dict[str, list[float]] = {name: [] for name in units}
    progress = counter("depthwise", "rounds", every_s=0.0)
    for r in range(args.rounds):
        for name, unit in units.items():
            rounds[name].append(unit())
        progress(r + 1, args.rounds)
    for what in ("layer_forward", "layer_forward_backward", "lite0_forward"):
        native, shifted = rounds[f"{what}/native"], rounds[f"{what}/shifted"]
        for form, times in (("native", native), ("shifted", shifted)):
            extra = (
                {"images_per_s": round(args.batch / (min(times) / 1e3), 2)}
                if (what == "lite0_forward")
                else {}
            )
            emit(f"depthwise/{what}/{form}", min(times), "ms", rounds=times, **extra)
        per_round = [n / s for n, s in zip(native, shifted, strict=True)]
        emit(
            f"depthwise/{what}/speedup",
            float(np.median(per_round)),
            "x",
            vs=f"{what}/native",
            ratio=float(np.median(per_round)),
            per_round=per_round,
        )
    if not args.skip_train:
        steps = {}
        for form in ("native", "shifted", "native", "shifted"):  # two rounds, interleaved
            got = lite0_train(form, args.train_batch)
            steps.setdefault(form, []).append(got["step_s"])
            print(
                f"[depthwise] train {form}: {got['step_s']:.2f} s/step, compile "
                f"{got['compile_s']:.1f} s, {got['flops_per_step'] / args.train_batch / 1e9:.1f}"
                " GFLOP/image (XLA)",
                file=sys.stderr,
                flush=True,
            )
            emit(
                f"depthwise/lite0_train/{form}",
                got["step_s"],
                "s/step",
                images_per_s=round(args.train_batch / got["step_s"], 3),
                compile_s=round(got["compile_s"], 2),
                gflop_per_image=round(got["flops_per_step"] / args.train_batch / 1e9, 2),
                batch=args.train_batch,
            )
        per_round = [n / s for n, s in zip(steps["native"], steps["shifted"], strict=True)]
        emit(
            "depthwise/lite0_train/speedup",
            float(np.median(per_round)),
            "x",
            vs="lite0_train/native",
            ratio=float(np.median(per_round)),
            per_round=per_round,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
