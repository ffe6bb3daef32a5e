"""``python -m launch.study``: which frozen features make the best linear probe on your data?

    python -m launch.study --dataset=oct --data_dir=DIR/OCT2017 --input_sizes=224,320

Scores each variant (input resolution x ``pre_logits`` or ``multi_stage`` features x with or
without horizontal-flip averaging) by nested, patient-grouped cross-validation on the training
images only, and prints one JSON line per variant (balanced accuracy, accuracy, weighted
error, urgent-referral AUC, per-class recall). The test split is never read.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from launch.runtime import add_device_flags, setup_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", default="oct")
    p.add_argument("--data_dir", default=None)
    p.add_argument("--classes", default=None, help="comma-separated class subset")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--pretrained", default="auto")
    p.add_argument("--in_channels", type=int, default=1)
    p.add_argument("--input_sizes", default="224", help="comma-separated resolutions")
    p.add_argument("--features", default="pre_logits,multi_stage")
    p.add_argument("--flips", default="no,yes", help="no, yes or both (no,yes)")
    p.add_argument("--cv_folds", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    add_device_flags(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_from_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from engine.config import TrainConfig
    from engine.evaluation.probe_study import study
    from engine.mesh import make_mesh

    config = TrainConfig(
        model=args.model,
        pretrained=None if args.pretrained.lower() == "none" else args.pretrained,
        dataset=args.dataset,
        data_dir=args.data_dir,
        classes=None if args.classes is None else tuple(args.classes.split(",")),
        in_channels=args.in_channels,
        cv_folds=args.cv_folds,
        eval_batch_size=args.batch_size,
    )
    rows = study(
        config,
        make_mesh(args.devices),
        input_sizes=[int(s) for s in args.input_sizes.split(",")],
        feature_sets=args.features.split(","),
        flips=[f == "yes" for f in args.flips.split(",")],
    )
    for row in rows:
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
