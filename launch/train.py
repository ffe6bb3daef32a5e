"""``python -m launch.train``: train (or resume) a classifier; see ``--help``.

    python -m launch.train --dataset=oct --data_dir=DIR/OCT2017 --devices=8 --workdir=runs/oct
    python -m launch.train --preset=oct_full --data_dir=DIR/OCT2017      # the paper's main model
    python -m launch.train --demo                                        # the README's main job

Flags override a preset's values; a ``--workdir`` that holds a checkpoint resumes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import Mesh

from configs import preset_config, preset_names
from data_pipelines.integrity import BadImageError
from data_pipelines.layout import DatasetLayoutError
from data_pipelines.sources import LAYOUTS
from data_pipelines.sources import missing_data_message as data_missing_message
from engine.config import TrainConfig
from engine.evaluation.evaluate import EvalData, evaluate_run
from engine.inference import load_run
from engine.loop import NonFiniteError
from engine.mesh import make_mesh
from engine.trainer import train
from launch.config_flags import add_config_flags, explicit_values
from launch.runtime import add_device_flags, setup_from_args
from models.weights_file import WeightFileError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m launch.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        default=None,
        help="start from a named configuration (configs/NAME.py documents each)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the README's main job: --preset=demo with 8 simulated devices",
    )
    add_config_flags(parser)
    add_device_flags(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig: defaults <- preset <- explicit flags."""
    explicit = explicit_values(args)
    preset = "demo" if args.demo and not args.preset else args.preset
    if preset:
        return preset_config(preset, **explicit)
    return TrainConfig(**explicit)


def missing_data_message(config: TrainConfig) -> str | None:
    """data_pipelines' text (archive, DOI, layout) when ``config`` names a data set but no
    data_dir."""
    if config.data_dir is None and config.dataset in LAYOUTS and config.dataset != "oct_sample":
        return data_missing_message(config.dataset)
    return None


def write_report(config: TrainConfig, mesh: Mesh) -> dict[str, Any]:
    """The paper's metrics on ``config.final_split`` with the best checkpoint (as
    launch.evaluate), on the mesh the run trained on."""
    run = load_run(config.workdir, which="best")
    return evaluate_run(run, EvalData(split=config.final_split), mesh)


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
            f"  checkpoints   {root / 'checkpoints' / 'latest'}  |  "
            f"best (step {summary.best_step}): "
            f"{root / 'checkpoints' / 'best'}"
        ),
    ]
    if summary.validation:
        best = [v for v in summary.validation if v["is_best"]]
        if best:
            lines.append(
                f"  validation    best {config.best_metric} {best[-1][config.best_metric]:.4f} "
                f"at step {best[-1]['step']}"
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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax", "orbax", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

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
        # The final split is evaluated here, after training, by the engine's evaluate_run
        # (the full report); the run itself records none.
        summary = train(config.replace(final_split=None), mesh)
        if config.final_split and summary.stopped is None:
            report = write_report(config, mesh)
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
                "(configs/recipes.py shows the Inception-V3 command)",
                file=sys.stderr,
            )
        return 2
    if lead:
        print_summary(summary, config, time.perf_counter() - start, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
