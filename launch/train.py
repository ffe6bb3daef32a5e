"""``python -m launch.train``: train (or resume) a classifier; see ``--help``.

    python -m launch.train --dataset=oct --data_dir=DIR/OCT2017 --devices=8 --workdir=runs/oct
    python -m launch.train --preset=oct_full --data_dir=DIR/OCT2017      # the paper's main model
    python -m launch.train --demo                                        # the README's main job

Flags override a preset's values; a ``--workdir`` that holds a checkpoint resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import types
import typing
from collections.abc import Sequence
from typing import Any

from launch.runtime import add_device_flags, setup_from_args

HELP = {
    "model": "architecture (models.list_models(): small_cnn, resnet18..152, inception_v3, efficientnet_lite0)",
    "pretrained": "converted weight file (launch.convert), registered tag (efficientnet_lite0.in1k), 'auto' "
    "(the model's registered ImageNet tag, if it has one) or 'none' (random initialisation)",
    "transfer": "linear_probe (the paper: frozen backbone, cached features), finetune, or scratch",
    "probe_solver": "linear_probe solver: lbfgs (full batch to convergence, L2 by patient-grouped CV) "
    "or steps (minibatch optimizer steps, the paper's recipe)",
    "cv_folds": "patient-grouped cross-validation folds of the training images (lbfgs probe)",
    "probe_l2": "L2 strength of the lbfgs probe (default: chosen by cross-validation)",
    "probe_select": "what picks the L2 strength: balanced_log_loss or balanced_accuracy",
    "init_from": "a run directory whose best checkpoint initialises this run (e.g. finetune after linear_probe)",
    "finetune_stages": "finetune only the last N backbone stages (+ classifier); default: all",
    "bn_mode": "BatchNorm statistics in trained stages: train (updated) or frozen",
    "backbone_lr_scale": "finetune: backbone learning rate = lr * this",
    "in_channels": "1: grey input (pretrained first conv summed over RGB: same maths, 3x less input work)",
    "input_size": "input resolution (default: the weights' own)",
    "model_kwargs": "JSON dict of extra model options, e.g. '{\"drop_rate\": 0.3}'",
    "dataset": "oct, chest_xray, chest_xray_pathogen, chest_xray_3class, folder, oct_sample, synthetic; "
    "isl, isl/<condition>, isl_synthetic_a, isl_synthetic_b (task=isl)",
    "data_dir": "the unpacked archive (e.g. DIR/OCT2017 with train/ and test/)",
    "classes": "comma-separated class subset, first = label 0 (e.g. NORMAL,CNV for a binary task)",
    "val_fraction": "patient-level validation split carved from train",
    "max_per_class": "at most N training images per class (the paper's limited model: 1000)",
    "drop_leaked": "drop training images whose patient or file also appears in a later split",
    "augment": "training augmentation (flip, small affine, brightness/contrast; the paper used none)",
    "class_balanced_sampling": "oversample rare classes to balance every epoch",
    "workers": "input worker processes (0: threads in this process)",
    "on_bad_image": "error (stop, naming the file) or skip (log and leave it out)",
    "steps": "optimizer steps (overrides --epochs)",
    "epochs": "epochs over the training split (default 1 when --steps is not given)",
    "batch_size": "global batch size over all devices and processes",
    "eval_batch_size": "global batch size for evaluation (default: --batch_size)",
    "optimizer": "adam, adamw or sgd (momentum --momentum)",
    "lr": "peak learning rate (the classifier's when fine-tuning)",
    "momentum": "sgd momentum",
    "weight_decay": "on kernels only: decoupled for adamw, L2 for adam/sgd",
    "schedule": "cosine (decay to 0) or constant, after --warmup_steps linear warm-up",
    "warmup_steps": "linear warm-up steps",
    "clip_norm": "clip gradients to this global norm",
    "label_smoothing": "label smoothing of the cross-entropy",
    "class_weighting": "auto (balanced when the training classes differ in size), none or balanced "
    "(loss weight N / (K n_k) per class)",
    "dtype": "compute dtype: float32 or bfloat16 (parameters stay float32)",
    "seed": "seed of initialisation, data order, dropout and the validation split",
    "workdir": "run directory: config, checkpoints, metrics.jsonl, tb/ (resumes if it holds a checkpoint)",
    "log_every": "steps between metric fetches, log rows and progress updates",
    "eval_every": "steps between validations (default: once per epoch)",
    "checkpoint_every": "steps between checkpoints (default: at each validation)",
    "keep_checkpoints": "latest checkpoints kept",
    "best_metric": "validation metric that picks the best checkpoint: accuracy, balanced_accuracy, loss",
    "final_split": "split evaluated with the best checkpoint at the end, full report via launch.evaluate "
    "(train, val, test; None to skip)",
    "progress": "show the progress bar",
    "task": "auto (isl for the isl* data sets, else classification), classification, or isl "
    "(In Silico Labeling: transmitted-light z-stack in, per-pixel fluorescence out)",
    "labels": "isl: comma-separated fluorescence channels to predict (default: all in the data)",
    "output_size": "isl: output side of a training crop; the input adds the model's margin",
    "max_wells": "isl: train on N wells (a seeded nested order: the transfer budgets)",
}


def _flag_kwargs(annotation: Any) -> dict[str, Any]:
    """argparse keyword arguments for a TrainConfig field annotation."""
    hint = annotation
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is typing.Literal:
        return {"type": str, "choices": typing.get_args(hint)}
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if hint in (int, float, str):
        return {"type": hint}
    if typing.get_origin(hint) is tuple:
        return {"type": lambda text: tuple(s for s in text.split(",") if s)}
    if typing.get_origin(hint) is dict:
        return {"type": json.loads}
    raise TypeError(f"no flag type for {annotation!r}")


def build_parser() -> argparse.ArgumentParser:
    from engine.config import TrainConfig
    from engine.presets import preset_names

    parser = argparse.ArgumentParser(
        prog="python -m launch.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        default=None,
        help="start from a named configuration (engine/presets.py documents each)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the README's main job: --preset=demo with 8 simulated devices",
    )
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("run configuration (engine.config.TrainConfig)")
    for field in dataclasses.fields(TrainConfig):
        default = (
            field.default if field.default is not dataclasses.MISSING else field.default_factory()
        )
        group.add_argument(
            f"--{field.name}",
            default=argparse.SUPPRESS,
            help=f"{HELP[field.name]} (default: {default})",
            **_flag_kwargs(hints[field.name]),
        )
    add_device_flags(parser)
    return parser


def config_from_args(args: argparse.Namespace):
    """TrainConfig: defaults <- preset <- explicit flags."""
    from engine.config import TrainConfig, field_names
    from engine.presets import preset_config

    explicit = {k: getattr(args, k) for k in field_names() if hasattr(args, k)}
    for key in ("final_split", "pretrained"):
        if key in explicit and str(explicit[key]).lower() in ("none", ""):
            explicit[key] = None
    preset = "demo" if args.demo and not args.preset else args.preset
    if preset:
        return preset_config(preset, **explicit)
    return TrainConfig(**explicit)


def missing_data_message(config) -> str | None:
    """data_pipelines' text (archive, DOI, layout) when ``config`` names a data set but no data_dir."""
    from data_pipelines.sources import LAYOUTS
    from data_pipelines.sources import missing_data_message as message

    if config.data_dir is None and config.dataset in LAYOUTS and config.dataset != "oct_sample":
        return message(config.dataset)
    return None


def write_report(config, args: argparse.Namespace) -> dict[str, Any]:
    """The paper's metrics on ``config.final_split`` with the best checkpoint (as launch.evaluate)."""
    from engine.evaluation.evaluate import EvalData, evaluate_run
    from engine.inference import load_run
    from engine.mesh import make_mesh

    run = load_run(config.workdir, which="best")
    return evaluate_run(run, EvalData(split=config.final_split), make_mesh(args.devices))


def print_summary(summary, config, elapsed: float, report: dict[str, Any] | None = None) -> None:
    root = summary.workdir
    lines = [
        "",
        f"run: {root}  ({summary.step}/{summary.total_steps} steps, {elapsed:.0f} s"
        + (
            f", resumed from step {summary.resumed_from}"
            if summary.resumed_from is not None
            else ""
        )
        + ")",
        f"  config        {root / 'config.json'}",
        f"  metrics       {root / 'metrics.jsonl'}",
        f"  TensorBoard   tensorboard --logdir {root / 'tb'}",
        (
            f"  checkpoints   {root / 'checkpoints' / 'latest'}  |  best (step {summary.best_step}): "
            f"{root / 'checkpoints' / 'best'}"
        ),
    ]
    if summary.validation:
        best = [v for v in summary.validation if v["is_best"]]
        if best:
            lines.append(
                f"  validation    best {config.best_metric} {best[-1][config.best_metric]:.4f} at step {best[-1]['step']}"
            )
    lines += cv_summary_lines(root / "cv" / "report.json")
    for kind, path in (report or {}).items():
        lines.append(f"  report {kind:<6} {path}")
    if summary.stopped:
        lines.append(f"  stopped early ({summary.stopped}); run the same command again to resume")
    print("\n".join(lines), flush=True)


def cv_summary_lines(report_json) -> list[str]:
    """The cross-validated estimate of an L-BFGS probe run: balanced metrics first, warnings."""
    if not report_json.is_file():
        return []
    doc = json.loads(report_json.read_text())
    values = {k: v["value"] for k, v in doc["metrics"].items()}

    def pct(key: str) -> str:
        value = values.get(key)
        return "n/a" if value is None else f"{100 * value:.1f}%"

    recalls = ", ".join(
        f"{name} {pct(f'per_class/{name}/sensitivity')}" for name in doc["class_names"]
    )
    prov = doc["provenance"]
    weighting = "on" if prov["balanced_weighting"] else "off"
    lines = [
        (
            f"  cross-valid.  balanced accuracy {pct('balanced_accuracy')}, accuracy "
            f"{pct('accuracy')} ({prov['folds']} patient-grouped folds, nested; "
            f"L2 {prov['l2']:.3g}, balanced weighting {weighting})"
        ),
        f"                recall: {recalls}",
        f"  cv report     {report_json.parent / 'report.html'}",
    ]
    lines += [f"  WARNING: {w} (cross-validation)" for w in doc.get("warnings", [])]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.demo and args.devices is None:
        args.devices = 8
    try:
        config = config_from_args(args)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    message = missing_data_message(config)
    if message:
        print(f"launch.train: error: {message}", file=sys.stderr)
        return 2
    setup_from_args(args)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax", "orbax", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import jax

    from data_pipelines.integrity import BadImageError
    from data_pipelines.layout import DatasetLayoutError
    from engine.loop import NonFiniteError
    from engine.mesh import make_mesh
    from engine.trainer import train
    from models.weights_file import WeightFileError

    lead = jax.process_index() == 0
    mesh = make_mesh(args.devices)
    if lead:
        print(
            f"training {config.model} ({config.transfer}) on {config.dataset} with {mesh.size} "
            f"{mesh.devices.flat[0].platform} devices in {jax.process_count()} process(es) -> "
            f"{config.workdir}",
            flush=True,
        )
    start = time.perf_counter()
    report = None
    try:
        # The final split goes through launch.evaluate (the full report), not the trainer's quick check.
        summary = train(config.replace(final_split=None), mesh)
        if config.final_split and summary.stopped is None:
            report = write_report(config, args)
    except NonFiniteError as err:
        print(f"launch.train: error: {err}", file=sys.stderr)
        return 3
    except (
        BadImageError,
        DatasetLayoutError,
        OSError,  # a missing file, a full disk: the message names the file
        WeightFileError,
        ValueError,
    ) as err:
        print(f"launch.train: error: {err}", file=sys.stderr)
        if config.pretrained and str(config.pretrained) in str(err):
            print(
                "  ImageNet weights are converted once with `python -m launch.convert` "
                "(engine/presets.py shows the Inception-V3 command)",
                file=sys.stderr,
            )
        return 2
    if lead:
        print_summary(summary, config, time.perf_counter() - start, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
