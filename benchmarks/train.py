"""Training throughput of one model: images/s, step time, compile time, FLOPs and MFU, with a
PyTorch training step of the same architecture and batch measured in the same run.

    python -m launch.benchmark --what=train --model=resnet50 --batch=8 --devices=1 --synthetic

What is timed: the engine's jitted train step (uint8 batch normalised on the device, forward,
cross-entropy, backward, Adam update, BatchNorm statistics; state replicated and donated,
batch sharded over ``--devices``), ``--steps`` steps after ``--warmup``, ended by
``block_until_ready``. ``--synthetic`` feeds one random batch already on the devices (the
model's ceiling); without it batches come from the real input pipeline
(``data_pipelines``, ``--dataset``, default the bundled OCT sample).

FLOPs are XLA's cost analysis of the compiled step (forward + backward + optimizer, summed
over devices). MFU = achieved FLOP/s / (devices x dense bf16 peak) where the peak of the
device is known (ANCHORS.md table); on CPU no peak is assumed and achieved FLOP/s is
reported instead. The PyTorch peer (``--peer=torch``) is MONAI's 2-D ResNet for resnet*,
``efficientnet_lite_pytorch`` for efficientnet_lite0 and an equivalent ``nn.Sequential`` for
small_cnn: same input size, batch, channels, class count, Adam and cross-entropy, run with
all CPU threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

import models
from benchmarks.report import compiled_flops, emit, machine, mean_step_seconds
from data_pipelines.pipeline import make_train_iterator
from data_pipelines.preprocess import PreprocessConfig
from data_pipelines.sources import open_dataset
from engine.config import TrainConfig
from engine.mesh import make_mesh, to_global
from engine.optim import make_optimizer
from engine.state import build_model, init_train_state
from engine.steps import make_train_step
from launch.runtime import add_device_flags, setup_from_args

# Dense bf16 peak FLOP/s by device kind substring (ANCHORS.md "Hardware peaks").
PEAK_BF16 = {
    "H100": 989e12,
    "H200": 989e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}
MONAI_LAYERS = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m launch.benchmark --what=train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="resnet50", help="registered model name")
    parser.add_argument("--batch", type=int, default=8, help="global batch size")
    parser.add_argument("--input_size", type=int, default=None, help="default: the model's")
    parser.add_argument("--in_channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--num_classes", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
    parser.add_argument(
        "--synthetic", action="store_true", help="one random on-device batch, no input pipeline"
    )
    parser.add_argument("--dataset", default="oct_sample", help="data set when not --synthetic")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--peer", default="torch", choices=("torch", "none"))
    add_device_flags(parser)
    return parser.parse_args(argv)


def peak_flops(device_kind: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k.lower() in device_kind.lower()), None)


def measure_jax(args: argparse.Namespace) -> dict[str, float]:
    mesh = make_mesh(args.devices)
    meta = models.metadata_for(
        args.model, num_classes=args.num_classes, in_channels=args.in_channels
    )
    size = args.input_size or meta.input_size
    meta = meta.replace(input_size=size)
    config = TrainConfig(
        model=args.model,
        transfer="scratch",
        in_channels=args.in_channels,
        input_size=size,
        batch_size=args.batch,
        dtype=args.dtype,
        schedule="constant",
        progress=False,
    )
    t0 = time.perf_counter()
    model = build_model(config, args.num_classes)
    tx, schedule = make_optimizer(config, 1000, meta.classifier_paths[0])
    model_def, state = init_train_state(model, config, meta, tx, mesh)
    init_s = time.perf_counter() - t0
    step = make_train_step(model_def, tx, schedule, config, meta, mesh)

    if args.synthetic:
        rng = np.random.default_rng(0)
        local = args.batch // jax.process_count()
        fixed = to_global(
            {
                "image": rng.integers(0, 256, (local, size, size, args.in_channels), np.uint8),
                "label": rng.integers(0, args.num_classes, local).astype(np.int32),
                "mask": np.ones(local, bool),
            },
            mesh,
        )
        next_batch = lambda: fixed
    else:
        source = open_dataset(args.dataset, data_dir=args.data_dir, split="train")
        batches = make_train_iterator(
            source,
            PreprocessConfig.from_metadata(meta, channels=args.in_channels),
            global_batch_size=args.batch,
            mesh=mesh,
            seed=0,
        )
        next_batch = lambda: next(batches)

    first = next_batch()
    t0 = time.perf_counter()
    compiled = step.lower(state, first).compile()
    compile_s = time.perf_counter() - t0
    flops_per_device = compiled_flops(compiled.cost_analysis())
    for _ in range(args.warmup):
        state, metrics = compiled(state, next_batch())
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = compiled(state, next_batch())
    jax.block_until_ready((state, metrics))
    step_s = (time.perf_counter() - t0) / args.steps
    return {
        "init_s": init_s,
        "compile_s": compile_s,
        "step_s": step_s,
        "images_per_sec": args.batch / step_s,
        "flops_per_step": flops_per_device * mesh.size,
        "devices": mesh.size,
        "input_size": size,
        "device_kind": mesh.devices.flat[0].device_kind,
    }


def torch_peer(name: str, num_classes: int, in_channels: int):
    """A torch module of the same architecture, or None when no peer is installed."""
    import torch

    if name in MONAI_LAYERS:
        from monai.networks.nets.resnet import ResNet, ResNetBlock, ResNetBottleneck

        block = ResNetBottleneck if name in ("resnet50", "resnet101", "resnet152") else ResNetBlock
        return ResNet(
            block,
            list(MONAI_LAYERS[name]),
            [64, 128, 256, 512],
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=2,
            shortcut_type="B",
            num_classes=num_classes,
            bias_downsample=False,
        )
    if name == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(
            "efficientnet-lite0", num_classes=num_classes, image_size=None, in_channels=in_channels
        )
    if name == "small_cnn":

        def conv_bn(a: int, b: int, stride: int) -> torch.nn.Module:
            return torch.nn.Sequential(
                torch.nn.Conv2d(a, b, 3, stride, 1, bias=False),
                torch.nn.BatchNorm2d(b),
                torch.nn.ReLU(),
            )

        return torch.nn.Sequential(
            conv_bn(in_channels, 8, 2),
            torch.nn.MaxPool2d(2),
            conv_bn(8, 16, 1),
            torch.nn.MaxPool2d(2),
            conv_bn(16, 32, 1),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(32, num_classes),
        )
    return None


def measure_torch(args: argparse.Namespace, size: int) -> dict[str, float] | None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = torch_peer(args.model, args.num_classes, args.in_channels)
    if model is None:
        return None
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.randn(args.batch, args.in_channels, size, size)
    labels = torch.randint(0, args.num_classes, (args.batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    step_s = mean_step_seconds(step, warmup=args.warmup, steps=args.steps)
    return {
        "step_s": step_s,
        "images_per_sec": args.batch / step_s,
        "threads": torch.get_num_threads(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if "--model=isl" in given or (
        "--model" in given and given[given.index("--model") + 1 :][:1] == ["isl"]
    ):
        from benchmarks import isl_train  # the dense task: its own step, batch and PyTorch twin

        return isl_train.main(given)
    args = parse(argv)

    setup_from_args(args)  # before JAX starts: --devices on CPU
    ours = measure_jax(args)
    info = machine() | {
        "model": args.model,
        "batch": args.batch,
        "devices": ours["devices"],
        "input_size": ours["input_size"],
        "dtype": args.dtype,
        "synthetic": args.synthetic,
    }
    peer = measure_torch(args, ours["input_size"]) if args.peer == "torch" else None
    emit("train_compile_s", ours["compile_s"], "s", **info)
    emit("train_init_s", ours["init_s"], "s", **info)
    emit("train_step_s", ours["step_s"], "s", **info)
    achieved = ours["flops_per_step"] / ours["step_s"]
    emit(
        "train_gflop_per_image",
        ours["flops_per_step"] / args.batch / 1e9,
        "GFLOP",
        source="XLA cost analysis of the compiled step (forward+backward+update)",
        **info,
    )
    peak = peak_flops(ours["device_kind"])
    if peak is None:
        emit(
            "train_achieved_tflops",
            achieved / 1e12,
            "TFLOP/s",
            peak="none assumed: no published peak for this device, so no MFU",
            **info,
        )
    else:
        emit(
            "train_mfu",
            achieved / (peak * ours["devices"]),
            "fraction",
            peak=f"{peak / 1e12:.0f} TFLOP/s dense bf16 per device",
            achieved_tflops=achieved / 1e12,
            **info,
        )
    if peer is None:
        emit(
            "train_images_per_sec",
            ours["images_per_sec"],
            "img/s",
            peer="none" if args.peer == "none" else f"no torch peer for {args.model}",
            **info,
        )
        return 0
    emit(
        "pytorch_train_images_per_sec",
        peer["images_per_sec"],
        "img/s",
        threads=peer["threads"],
        **info,
    )
    emit(
        "train_images_per_sec",
        ours["images_per_sec"],
        "img/s",
        vs="pytorch_train_images_per_sec",
        ratio=ours["images_per_sec"] / peer["images_per_sec"],
        **info,
    )
    return 0
