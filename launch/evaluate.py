"""``python -m launch.evaluate``: the paper's metrics for a trained run, with 95% CIs over
patients.

    python -m launch.evaluate --workdir=runs/oct          # the run's data set, test split
    python -m launch.evaluate --workdir=runs/oct --dataset=oct --data_dir=../shared/data/kermany/oct

Restores the run's best checkpoint (``--which``), runs every image of ``--split`` once through
the sharded eval forward (padding dropped, each image counted exactly once over devices and
processes; checked; ``engine.evaluation.evaluate``), and writes into ``--out`` (default
``<workdir>/eval/<split>``): ``report.json`` (every metric with its bootstrap CI, model,
weights, data set, image and patient counts, git commit), ``predictions.csv`` (path, patient,
label, prediction, class probabilities, referral decision) and ``report.html`` (ROC curves with
the paper's operating points, confusion matrix, our numbers beside the paper's).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from data_pipelines.integrity import BadImageError
from data_pipelines.layout import DatasetLayoutError
from engine.evaluation.evaluate import EvalData, evaluate_run
from engine.inference import load_run
from engine.mesh import make_mesh
from launch import runtime


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workdir", required=True, help="a training run directory (launch.train --workdir)"
    )
    p.add_argument("--dataset", default=None, help="data set name (default: the run's)")
    p.add_argument("--data_dir", default=None, help="its files (default: the run's)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="default test")
    p.add_argument(
        "--which", default="best", choices=("best", "latest"), help="checkpoint (default best)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default <workdir>/eval/<split>)"
    )
    p.add_argument(
        "--batch_size",
        type=int,
        default=None,
        help="global eval batch size (default: the run's eval batch size)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples of patients (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--on_bad_image",
        default=None,
        choices=("error", "skip"),
        help="unreadable test files: stop naming them, or skip and list them (default: the run's)",
    )
    runtime.add_device_flags(p)
    return p


def run(args: argparse.Namespace) -> dict[str, Path]:
    """Load the run and evaluate it as the flags say (``engine.evaluation.evaluate``)."""
    trained = load_run(args.workdir, which=args.which)
    data = EvalData(args.split, args.dataset, args.data_dir, args.on_bad_image)
    return evaluate_run(
        trained,
        data,
        make_mesh(args.devices),
        out=args.out,
        batch_size=args.batch_size,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.setup_from_args(args)
    try:
        paths = run(args)
    except (FileNotFoundError, ValueError, BadImageError, DatasetLayoutError) as err:
        text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"launch.evaluate: error: {text}", file=sys.stderr)
        return 1
    for path in paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
