"""Training throughput of the In Silico Labeling network, beside its PyTorch twin in the same run.

    python -m launch.benchmark --what=train --model=isl --batch=16 --devices=1

What is timed: the engine's jitted dense train step (``engine.dense_task.make_dense_train_step``:
forward over the multi-scale towers, masked per-pixel cross-entropy over intensity bins,
backward, Adam, BatchNorm statistics; state replicated and donated, batch sharded over
``--devices``) on one fixed random batch already on the devices, ``--steps`` steps after
``--warmup``, ended by ``block_until_ready``. The peer (``benchmarks.isl_torch``) is the
same network in PyTorch (checked equal by tests/benchmarks/test_isl_benchmark.py) with the
same loss, Adam, batch, crop and bins, on all CPU threads. Throughput is reported in crops/s
and output pixels/s (a crop is one ``input -> output`` training window).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence

import jax
import numpy as np

import models
from benchmarks.report import compiled_flops, emit, machine, mean_step_seconds
from engine.config import TrainConfig
from engine.dense_task import make_dense_train_step
from engine.mesh import make_mesh, to_global
from engine.optim import make_optimizer
from engine.state import build_model, init_train_state
from launch.runtime import add_device_flags, setup_from_args


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m launch.benchmark --what=train --model=isl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="isl", choices=("isl",))
    parser.add_argument("--batch", type=int, default=16, help="global batch of crops")
    parser.add_argument("--output_size", type=int, default=24, help="output side of a crop")
    parser.add_argument("--in_channels", type=int, default=7, help="z planes")
    parser.add_argument("--labels", type=int, default=3)
    parser.add_argument(
        "--model_kwargs",
        type=json.loads,
        default={"width": 8, "num_bins": 32},
        help="JSON (default: the isl_demo preset's network)",
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
    parser.add_argument("--peer", default="torch", choices=("torch", "none"))
    add_device_flags(parser)
    return parser.parse_args(argv)


def _batch(args: argparse.Namespace, in_size: int):
    rng = np.random.default_rng(0)
    out = args.output_size
    return {
        "image": rng.random((args.batch, in_size, in_size, args.in_channels), np.float32),
        "target": rng.random((args.batch, out, out, args.labels), np.float32),
        "target_mask": (rng.random((args.batch, out, out, args.labels)) > 0.1).astype(np.float32),
        "mask": np.ones(args.batch, bool),
        "index": np.arange(args.batch, dtype=np.int32),
    }


def measure_jax(args: argparse.Namespace) -> dict[str, float]:
    mesh = make_mesh(args.devices)
    config = TrainConfig(
        task="isl",
        dataset="isl_synthetic_a",
        model="isl",
        pretrained=None,
        transfer="scratch",
        in_channels=args.in_channels,
        model_kwargs=args.model_kwargs,
        output_size=args.output_size,
        batch_size=args.batch,
        schedule="constant",
        progress=False,
    )
    meta = models.metadata_for("isl", num_classes=args.labels, in_channels=args.in_channels)
    t0 = time.perf_counter()
    model = build_model(config, args.labels)
    in_size = model.input_size(args.output_size)
    tx, schedule = make_optimizer(config, 1000, meta.classifier_paths[0])
    model_def, state = init_train_state(model, config, meta, tx, mesh)
    init_s = time.perf_counter() - t0
    step = make_dense_train_step(model_def, tx, schedule, config, mesh)
    batch = to_global(_batch(args, in_size), mesh)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    flops = compiled_flops(compiled.cost_analysis()) * mesh.size
    for _ in range(args.warmup):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    step_s = (time.perf_counter() - t0) / args.steps
    return {
        "init_s": init_s,
        "compile_s": compile_s,
        "step_s": step_s,
        "flops_per_step": flops,
        "devices": mesh.size,
        "input_size": in_size,
    }


def measure_torch(args: argparse.Namespace, in_size: int) -> dict[str, float]:
    import torch

    from benchmarks.isl_torch import TorchIslNet, masked_pixel_loss

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in args.model_kwargs.items()}
    net = TorchIslNet(num_classes=args.labels, in_channels=args.in_channels, **kwargs)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = _batch(args, in_size)
    image = torch.from_numpy(data["image"].transpose(0, 3, 1, 2).copy())
    target = torch.from_numpy(data["target"].transpose(0, 3, 1, 2).copy())
    mask = torch.from_numpy(data["target_mask"].transpose(0, 3, 1, 2).copy())

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        masked_pixel_loss(net(image), target, mask).backward()
        optimizer.step()

    step_s = mean_step_seconds(step, warmup=args.warmup, steps=args.steps)
    return {"step_s": step_s, "threads": torch.get_num_threads()}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)

    setup_from_args(args)
    ours = measure_jax(args)
    pixels = args.batch * args.output_size**2
    info = machine() | {
        "model": "isl",
        "model_kwargs": args.model_kwargs,
        "batch": args.batch,
        "crop": f"{ours['input_size']}->{args.output_size}",
        "devices": ours["devices"],
        "load_avg": os.getloadavg()[0],
    }
    emit("isl_train_compile_s", ours["compile_s"], "s", **info)
    emit("isl_train_init_s", ours["init_s"], "s", **info)
    emit("isl_train_step_s", ours["step_s"], "s", **info)
    emit(
        "isl_train_achieved_tflops",
        ours["flops_per_step"] / ours["step_s"] / 1e12,
        "TFLOP/s",
        source="XLA cost analysis of the compiled step",
        **info,
    )
    if args.peer == "none":
        emit("isl_train_crops_per_sec", args.batch / ours["step_s"], "crops/s", peer="none", **info)
        return 0
    peer = measure_torch(args, ours["input_size"])
    emit("pytorch_isl_train_step_s", peer["step_s"], "s", threads=peer["threads"], **info)
    emit("pytorch_isl_train_crops_per_sec", args.batch / peer["step_s"], "crops/s", **info)
    emit(
        "isl_train_crops_per_sec",
        args.batch / ours["step_s"],
        "crops/s",
        vs="pytorch_isl_train_crops_per_sec",
        ratio=peer["step_s"] / ours["step_s"],
        **info,
    )
    emit("isl_train_output_pixels_per_sec", pixels / ours["step_s"], "px/s", **info)
    return 0
