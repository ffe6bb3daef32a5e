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

from engine.config import TrainConfig
from engine.evaluation.probe_study import study
from engine.mesh import make_mesh
from launch.config_flags import add_config_flags, explicit_values
from launch.runtime import add_device_flags, setup_from_args

CONFIG_FIELDS = ("dataset", "data_dir", "classes", "model", "pretrained", "in_channels", "cv_folds")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_flags(
        p,
        CONFIG_FIELDS,
        defaults={"in_channels": 1},
        title="what to study (engine.config.TrainConfig)",
    )
    p.add_argument("--input_sizes", default="224", help="comma-separated resolutions")
    p.add_argument("--features", default="pre_logits,multi_stage")
    p.add_argument("--flips", default="no,yes", help="no, yes or both (no,yes)")
    p.add_argument("--batch_size", type=int, default=32, help="global batch of the feature passes")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    add_device_flags(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_from_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = TrainConfig(**explicit_values(args), eval_batch_size=args.batch_size)
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
