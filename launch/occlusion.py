"""``python -m launch.occlusion``: the paper's occlusion test on a trained run, many images at once.

    python -m launch.occlusion --workdir=runs/oct --images=../shared/data/kermany/oct/test \
        --window=20 --stride=4 --out=runs/oct/occlusion

Loads the run's best checkpoint, prepares every image as in evaluation (the run's weight
metadata), slides a ``--window`` box of ``--fill`` with ``--stride`` over each, and records
the drop of the target class's probability (``--target=predicted`` or the folder ``label``).
The images are read a batch at a time through the data pipeline
(``data_pipelines.image_files``), and each batch goes through one mesh-sharded computation
in chunks of ``--max_batch`` occluded copies (``engine.occlusion.study.run_study``).
``--method``: ``incremental`` (default; exact to float rounding) recomputes per window only
the patch of each layer the box changes, from the unoccluded image's cached layer outputs
(``engine.occlusion.incremental``); ``full`` runs every occluded copy through the whole
network; ``approximate`` adds ``--tau`` (cap each layer's patch at that fraction of its map)
and/or ``--drill_down`` (a coarse pass, then the full stride only around its top fraction of
windows), and reports its fidelity against the exact map (peak-window agreement, SSIM; the
exact map costs an extra incremental run, ``--no_fidelity`` skips it). Writes into
``--out``: ``heatmaps.npz``, ``overlays/*.png`` (original image | heat over the original,
mapped back through the centre crop, longer side at most 1024 px;
cyan = largest-drop window, green = lesion), ``index.html`` and ``summary.json``.
With lesion boxes (``--boxes``, or a ``boxes.json`` above the images, as
``data_pipelines.synthetic.write_synthetic`` writes) it reports the fraction of images whose
largest-drop window falls on the lesion (overlaps it; also reported: centred inside it; the
paper: 94.7%). Unreadable images are
reported by name and skipped; the exit status is then 1. The test runs in one process (all
its local devices); a multi-process start is refused.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import jax

from data_pipelines.image_files import open_image_files
from engine.anchors import OCCLUSION_LESION_CHECK
from engine.inference import load_run, require_classification
from engine.mesh import make_mesh
from engine.occlusion.fidelity import Fidelity
from engine.occlusion.study import run_study
from engine.occlusion.sweep import (
    APPROXIMATE_DRILL_DOWN,
    APPROXIMATE_TAU,
    DEFAULT_METHOD,
    METHODS,
    OcclusionConfig,
)
from launch import runtime


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.occlusion",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workdir", required=True, help="a training run directory (launch.train --workdir)"
    )
    p.add_argument(
        "--images",
        required=True,
        nargs="+",
        help="image files, folders (searched recursively) or globs",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--window", type=int, default=20, help="box side in model-input pixels (default 20)"
    )
    p.add_argument("--stride", type=int, default=4, help="box step in pixels (default 4)")
    p.add_argument(
        "--fill",
        default="zero",
        choices=("zero", "mean", "blur"),
        help="box content: black (the paper's blank box), the image mean, or the image "
        "blurred (default zero)",
    )
    p.add_argument(
        "--blur_sigma",
        type=float,
        default=None,
        help="Gaussian sigma for --fill=blur (default window / 2)",
    )
    p.add_argument(
        "--target",
        default="predicted",
        choices=("predicted", "label"),
        help="class whose probability is tracked: the unoccluded prediction, or the label "
        "given by each image's parent folder (default predicted)",
    )
    add_method_flags(p)
    p.add_argument(
        "--max_batch",
        type=int,
        default=256,
        help="occluded copies per forward pass, over all devices (default 256)",
    )
    p.add_argument(
        "--boxes",
        type=Path,
        default=None,
        help="boxes.json with lesion boxes (default: one found above the images)",
    )
    p.add_argument(
        "--which", default="best", choices=("best", "latest"), help="checkpoint (default best)"
    )
    p.add_argument(
        "--no_overlays", action="store_true", help="write heatmaps.npz and summary.json only"
    )
    runtime.add_device_flags(p)
    return p


def add_method_flags(p: argparse.ArgumentParser) -> None:
    """``--method``, ``--tau``, ``--drill_down`` (shared with ``launch.predict --heatmaps``)."""
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=METHODS,
        help="full: every occluded copy through the whole network; incremental: only the patch "
        "each window changes, layer by layer (exact to float rounding); approximate: "
        f"incremental with --tau and/or --drill_down (default {DEFAULT_METHOD})",
    )
    p.add_argument(
        "--tau",
        type=float,
        default=None,
        help="approximate: cap each layer's changed patch at this fraction of its feature map "
        f"(Krypton's projective-field threshold; default {APPROXIMATE_TAU} when neither "
        "--tau nor --drill_down is given)",
    )
    p.add_argument(
        "--drill_down",
        type=float,
        default=None,
        help="approximate: windows at --drill_down_factor x the stride first, then the full "
        "stride only around this top fraction of them (default "
        f"{APPROXIMATE_DRILL_DOWN} when neither --tau nor --drill_down is given)",
    )
    p.add_argument(
        "--drill_down_factor", type=int, default=2, help="coarse-pass stride multiple (default 2)"
    )
    p.add_argument(
        "--no_fidelity",
        action="store_true",
        help="approximate: skip the exact map that every approximate run is compared with "
        "(peak agreement, SSIM)",
    )


def method_fields(args: argparse.Namespace) -> dict:
    """The OcclusionConfig fields of the method flags."""
    return {
        "method": args.method,
        "tau": args.tau,
        "drill_down": args.drill_down,
        "drill_down_factor": args.drill_down_factor,
    }


def print_fidelity(scores: Fidelity, seconds: float) -> None:
    """The approximate method's fidelity to the exact map, in one line."""
    print(
        f"approximate vs exact ({scores.images} images): peak window agrees on "
        f"{100 * scores.peak_agreement:.1f}% (overlaps on "
        f"{100 * scores.peak_overlap:.1f}%), SSIM mean {scores.ssim_mean:.3f} "
        f"(min {scores.ssim_min:.3f}); approximate {seconds:.1f} s, exact "
        f"{scores.exact_seconds:.1f} s",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    trained = load_run(args.workdir, which=args.which)
    require_classification(trained, "launch.occlusion")
    files = open_image_files(
        args.images,
        trained.class_names,
        boxes_file=args.boxes,
        strict_labels=args.target == "label",
    )
    cfg = trained.record.eval_preprocess()
    print(
        f"{len(files) + len(files.errors)} image files; model {trained.config.model} step "
        f"{trained.step} ({trained.checkpoint}), input {cfg.input_size} px",
        flush=True,
    )
    if files.boxes_file is not None:
        with_lesion = sum(box is not None for box in files.lesion_boxes)
        print(f"lesion boxes from {files.boxes_file}: {with_lesion} images with a lesion")
    config = OcclusionConfig(
        window=args.window,
        stride=args.stride,
        fill=args.fill,
        max_batch=args.max_batch,
        blur_sigma=args.blur_sigma,
        **method_fields(args),
    )
    mesh = make_mesh(args.devices)
    if len(files) == 0:
        for line in files.errors:
            print(f"launch.occlusion: error: {line}", file=sys.stderr)
        print("launch.occlusion: error: no readable images", file=sys.stderr)
        return 1
    study = run_study(
        trained,
        files,
        config,
        mesh,
        args.out,
        target=args.target,
        overlays=not args.no_overlays,
        fidelity=not args.no_fidelity,
    )
    for line in study.unreadable:
        print(f"launch.occlusion: error: {line}", file=sys.stderr)
    if study.fidelity is not None:
        print_fidelity(study.fidelity, study.seconds)
    summary = study.summary
    print(
        f"{summary.images} heatmaps ({summary.windows_per_image} windows each) in "
        f"{study.seconds:.1f} s on {mesh.size} device(s) -> {args.out}"
    )
    check = summary.lesion_check
    if check is not None and check.images_with_lesion:
        print(
            f"lesion check: largest-drop window on the lesion in {check.overlap.hits}/"
            f"{check.images_with_lesion} images ({100 * check.overlap.fraction:.1f}%; centred "
            f"on it: {100 * check.centre.fraction:.1f}%; paper "
            f"{100 * OCCLUSION_LESION_CHECK['fraction']:.1f}%)"
        )
    return 1 if study.unreadable else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.window, args.stride, args.max_batch) < 1:
        print(
            "launch.occlusion: error: --window, --stride and --max_batch must be >= 1",
            file=sys.stderr,
        )
        return 2
    runtime.setup_from_args(args)
    if jax.process_count() > 1:  # every process would load, occlude and write every image
        print(
            f"launch.occlusion: error: runs in one process only ({jax.process_count()} were "
            "started); use --devices for the local accelerators instead",
            file=sys.stderr,
        )
        return 2
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"launch.occlusion: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
