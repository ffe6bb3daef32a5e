"""``python -m launch.predict``: classify image files and print / write the top-k classes.

    python -m launch.predict --pretrained=efficientnet_lite0.in1k --top_k=5 --out=pred.csv cat.png

``--pretrained`` takes a file written by ``launch.convert`` or a registered tag, and runs that
network as it is (its own head, e.g. ImageNet's 1000 classes), feeding it images prepared as
the file's metadata says: shorter side resized to ``input_size / crop_fraction`` with the
metadata's interpolation, centre crop ``input_size``, RGB (or grey for 1-channel networks),
``(x / 255 - mean) / std``. The CSV has the columns ``path,rank,class_index,class_name,
probability``, one row per image and rank. Images that cannot be read are reported by name,
the others are still classified, and the exit status is 1 if any failed.

``--workdir`` applies a trained run instead (``launch.train --workdir``; best checkpoint):

    python -m launch.predict --workdir=runs/oct --out=pred.csv --heatmaps scans/ more/*.jpeg

Arguments may then be files, folders (searched recursively) or globs. Each image gets the
run's class, its probabilities and, for OCT runs, the paper's referral decision (CNV/DME
urgent, DRUSEN routine, NORMAL observation); the CSV has the columns ``path,patient,label,
prediction,p_<class>...,referral`` (patient parsed from the file name by
``data_pipelines.naming.patient_of``; label from a parent folder named after a class).
``--heatmaps`` also writes the occlusion test's heatmaps, overlays and gallery into
``--heatmaps_dir`` (default ``<workdir>/heatmaps``; ``launch.occlusion`` defaults: window 20,
stride 4, black box; ``--method`` (default incremental: exact, only each window's changed
patch recomputed), ``--tau``/``--drill_down`` for the approximate method, whose fidelity to
the exact map is printed unless ``--no_fidelity``). Every class's probability is written, so
``--top_k`` is refused here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import models
from data_pipelines.image_files import open_image_files
from engine.inference import load_run, predict_files, require_classification
from engine.mesh import make_mesh
from engine.occlusion.study import run_study
from engine.occlusion.sweep import OcclusionConfig
from engine.pretrained import Prediction, classify, load_weights_file_model
from engine.reports import writers
from engine.reports.predictions import prediction_rows
from launch.occlusion import add_method_flags, method_fields, print_fidelity

HEATMAP_MAX_BATCH = 32  # occluded copies per forward pass of --heatmaps
CSV_COLUMNS = ("path", "rank", "class_index", "class_name", "probability")


def write_csv(predictions: Sequence[Prediction], out: Path) -> None:
    """One row per image and rank (``CSV_COLUMNS``), through
    ``engine.reports.writers.write_csv``."""
    rows = [
        dict(zip(CSV_COLUMNS, (p.path, rank, i, name, f"{prob:.6f}")))
        for p in predictions
        for rank, (i, name, prob) in enumerate(
            zip(p.class_indices, p.class_names, p.probabilities), start=1
        )
    ]
    writers.write_csv(out, rows, columns=CSV_COLUMNS)


def format_prediction(p: Prediction) -> str:
    lines = [p.path]
    for rank, (i, name, prob) in enumerate(zip(p.class_indices, p.class_names, p.probabilities), 1):
        lines.append(f"  {rank}. {100 * prob:6.2f}%  {name} ({i})")
    return "\n".join(lines)


def predict_pretrained(
    pretrained: str, images: Sequence[Path], *, top_k: int, arch: str | None = None
) -> tuple[list[Prediction], list[str]]:
    """``--pretrained`` mode: the converted network with its own head and metadata."""
    model, meta = load_weights_file_model(pretrained, arch=arch)
    return classify(model, meta, images, top_k)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.predict",
        description="Classify images; print the top-k classes and optionally write a CSV "
        "(path,rank,class_index,class_name,probability).",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--pretrained",
        help="a weight file from launch.convert, or a registered tag such as "
        "efficientnet_lite0.in1k; its own head and preprocessing are used",
    )
    mode.add_argument(
        "--workdir",
        help="a training run directory (launch.train --workdir): its classes, probabilities and "
        "referral decision per image",
    )
    p.add_argument(
        "--heatmaps",
        action="store_true",
        help="with --workdir: also write occlusion heatmaps, overlays and a gallery",
    )
    p.add_argument(
        "--heatmaps_dir",
        type=Path,
        metavar="DIR",
        help="where --heatmaps writes (default <workdir>/heatmaps); implies --heatmaps",
    )
    add_method_flags(p.add_argument_group("--heatmaps method (as launch.occlusion)"))
    p.add_argument("--arch", help="refuse weights for any other architecture (optional check)")
    p.add_argument(
        "--top_k",
        type=int,
        default=None,
        help="with --pretrained: classes per image (default 5); --workdir writes all",
    )
    p.add_argument("--out", type=Path, help="write the predictions to this CSV")
    p.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="IMAGE",
        help="image files (with --workdir also folders and globs)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workdir is not None:
        if args.top_k is not None:
            print(
                "launch.predict: error: --top_k applies to --pretrained only; --workdir writes "
                "every class's probability",
                file=sys.stderr,
            )
            return 2
        return predict_workdir(args)
    if args.heatmaps or args.heatmaps_dir is not None:
        print("launch.predict: error: --heatmaps/--heatmaps_dir need --workdir", file=sys.stderr)
        return 2
    args.top_k = 5 if args.top_k is None else args.top_k
    if args.top_k < 1:
        print("launch.predict: error: --top_k must be >= 1", file=sys.stderr)
        return 2
    try:
        predictions, errors = predict_pretrained(
            args.pretrained, args.images, top_k=args.top_k, arch=args.arch
        )
    except (models.WeightFileError, models.WeightMismatchError, FileNotFoundError, ValueError) as e:
        text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"launch.predict: error: {text}", file=sys.stderr)
        return 1
    for p in predictions:
        print(format_prediction(p))
    if args.out is not None:
        write_csv(predictions, args.out)
        print(f"wrote {args.out} ({len(predictions)} images)")
    for line in errors:
        print(f"launch.predict: error: {line}", file=sys.stderr)
    return 1 if errors else 0


def predict_workdir(args: argparse.Namespace) -> int:
    """``--workdir`` mode: the run's classes, probabilities, referral (and heatmaps) per image."""
    try:
        trained = load_run(args.workdir)
        require_classification(trained, "launch.predict")
        files = open_image_files(args.images, trained.class_names)
        config = OcclusionConfig(max_batch=HEATMAP_MAX_BATCH, **method_fields(args))
    except (FileNotFoundError, ValueError) as e:
        print(f"launch.predict: error: {e}", file=sys.stderr)
        return 1
    names = trained.class_names
    unreadable = files.errors
    if len(files):
        mesh = make_mesh()
        found = predict_files(trained, files, mesh)
        unreadable = found.unreadable
        rows = prediction_rows(
            found.paths, found.patients, found.labels, found.probabilities, names
        )
        for row, p in zip(rows, found.probabilities):
            referral = f", referral: {row['referral']}" if row["referral"] else ""
            print(
                f"{row['path']}: {row['prediction']} ({100 * p.max():.1f}%){referral}  "
                + " ".join(f"{n}={100 * q:.1f}%" for n, q in zip(names, p))
            )
        if args.out is not None:
            writers.write_csv(args.out, rows)
            print(f"wrote {args.out} ({len(rows)} images)")
        if (args.heatmaps or args.heatmaps_dir is not None) and found.paths:
            out_dir = args.heatmaps_dir or Path(args.workdir) / "heatmaps"
            study = run_study(trained, files, config, mesh, out_dir, fidelity=not args.no_fidelity)
            if study.fidelity is not None:
                print_fidelity(study.fidelity, study.seconds)
            print(f"wrote heatmaps of {study.summary.images} images to {out_dir}")
    for line in unreadable:
        print(f"launch.predict: error: {line}", file=sys.stderr)
    return 1 if unreadable or not len(files) else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
