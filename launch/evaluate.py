"""``python -m launch.evaluate``: the paper's metrics for a trained run, with 95% CIs over patients.

    python -m launch.evaluate --workdir=runs/oct                      # the run's data set, test split
    python -m launch.evaluate --workdir=runs/oct --dataset=oct --data_dir=../shared/data/kermany/oct

Restores the run's best checkpoint (``--which``), runs every image of ``--split`` once through
the sharded eval forward (padding dropped, each image counted exactly once over devices and
processes; checked), and writes into ``--out`` (default ``<workdir>/eval/<split>``):
``report.json`` (every metric with its bootstrap CI, model, weights, data set, image and
patient counts, git commit), ``predictions.csv`` (path, patient, label, prediction, class
probabilities, referral decision) and ``report.html`` (ROC curves with the paper's operating
points, confusion matrix, our numbers beside the paper's).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def open_eval_source(
    config: dict[str, Any],
    class_names: Sequence[str],
    *,
    dataset: str | None,
    data_dir: str | None,
    split: str,
    on_bad_image: str | None,
) -> Any:
    """The split to evaluate, with the run's classes in the run's label order.

    ``train``/``val`` are opened exactly as training opened them (``val_fraction``, ``seed``,
    ``drop_leaked``; ``max_per_class`` for train), so ``--split=val`` is the run's validation set.
    """
    from data_pipelines.sources import open_dataset
    from engine.tasks import restrict_classes

    held_out = split == "test"  # train/val: the same carve, leak filter and cap as training
    source = open_dataset(
        dataset or config["dataset"],
        data_dir=data_dir if data_dir is not None else config.get("data_dir"),
        split=split,
        val_fraction=0.0 if held_out else config.get("val_fraction", 0.0),
        seed=config.get("seed", 0),
        drop_leaked=False if held_out else bool(config.get("drop_leaked", False)),
        max_per_class=config.get("max_per_class") if split == "train" else None,
        on_bad_image=on_bad_image or config.get("on_bad_image", "error"),
    )
    if tuple(source.class_names) != tuple(class_names):
        source = restrict_classes(source, list(class_names))  # raises naming missing classes
    return source


def evaluate_run(args: argparse.Namespace) -> dict[str, Path]:
    import jax
    import numpy as np

    from data_pipelines.datasets import declared_tasks
    from data_pipelines.pipeline import make_eval_iterator
    from data_pipelines.preprocess import PreprocessConfig
    from engine import inference
    from engine.evaluation import metrics
    from engine.mesh import make_mesh
    from engine.reports import classification as report
    from engine.workdir import library_versions

    trained = inference.load_run(args.workdir, which=args.which)
    config = trained.config
    if config.get("task") == "isl":  # dense per-pixel task: its own metrics and report
        from engine.evaluation.isl import evaluate_isl

        return evaluate_isl(args, trained)
    source = open_eval_source(
        config,
        trained.class_names,
        dataset=args.dataset,
        data_dir=args.data_dir,
        split=args.split,
        on_bad_image=args.on_bad_image,
    )
    if len(source) == 0:
        raise ValueError(f"{source.name}/{args.split}: no images to evaluate")
    mesh = make_mesh(args.devices)
    batch = args.batch_size or config.get("eval_batch_size") or config.get("batch_size") or 64
    batch = max(mesh.size, batch // mesh.size * mesh.size)
    cfg = PreprocessConfig.from_metadata(trained.metadata, channels=config.get("in_channels"))
    print(
        f"evaluating {config['model']} step {trained.step} ({trained.checkpoint}) on "
        f"{source.name}/{args.split}: {len(source)} images, batch {batch}, {mesh.size} device(s)",
        flush=True,
    )
    # Files that fail to decode under --on_bad_image=skip are dropped and named, not counted.
    batches = inference.SkippedImages(
        make_eval_iterator(
            source, cfg, global_batch_size=batch, mesh=mesh, workers=config.get("workers", 0)
        )
    )
    probs, index = inference.predict_probabilities(
        trained.model, batches, mesh, metadata=trained.metadata
    )
    expected = batches.expected(len(source))
    if not np.array_equal(index, expected):
        raise RuntimeError(
            f"evaluation saw {len(index)} images ({len(np.unique(index))} distinct) "
            f"for {len(expected)} in the split: some counted twice or missed"
        )
    undecodable = batches.paths(source.records)
    for path in undecodable:
        print(f"skipped (could not be decoded): {path}", flush=True)
    records = [source.records[i] for i in expected]
    labels = np.array([r.label for r in records])
    patients = [r.patient for r in records]
    evaluation = metrics.evaluate(
        probs,
        labels,
        patients,
        trained.class_names,
        tasks=declared_tasks(source.name),
        n_resamples=args.bootstrap,
        seed=args.seed,
    )
    versions = library_versions()
    data_dir = args.data_dir if args.data_dir is not None else config.get("data_dir")
    provenance = {
        "workdir": str(args.workdir),
        "model": config["model"],
        "pretrained": config.get("pretrained"),
        "transfer": config.get("transfer"),
        "weights_source": trained.metadata.source,
        "checkpoint": trained.checkpoint,
        "step": trained.step,
        "dataset": source.name,
        "data_dir": None if data_dir is None else str(data_dir),
        "split": args.split,
        "classes": list(trained.class_names),
        "images": len(records),
        "patients": len(set(patients)),
        "skipped_files": [f"{p}: {why}" for p, why in source.skipped]
        + [f"{p}: could not be decoded" for p in undecodable],
        "devices": mesh.size,
        "git_commit": versions.get("git_commit"),
        "jax": versions.get("jax"),
    }
    if jax.process_index() != 0:
        return {}
    rows = report.prediction_rows(
        [r.path for r in records], patients, labels, probs, trained.class_names
    )
    out = args.out or Path(args.workdir) / "eval" / args.split
    paths = report.write_report(out, evaluation, provenance, rows)
    _print_summary(evaluation)
    return paths


def _print_summary(evaluation: Any) -> None:
    """Balanced accuracy and per-class recall first, then the paper's metrics; warnings last."""
    from engine.reports.classification import headline_keys, headline_warnings

    lead = headline_keys(evaluation)
    rest = [k for k in evaluation.metrics if not k.startswith("per_class/") and k not in lead]
    for key in lead + rest:
        value = evaluation.metrics[key]
        lo, hi = evaluation.ci95.get(key, (float("nan"), float("nan")))
        name = key
        if key.startswith("per_class/"):
            name = key.replace("per_class/", "recall ").removesuffix("/sensitivity")
        print(f"  {name:34s} {100 * value:6.2f}%  (95% CI {100 * lo:.2f}-{100 * hi:.2f})")
    for warning in headline_warnings(evaluation):
        print(f"  WARNING: {warning}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.setup_from_args(args)
    from data_pipelines.integrity import BadImageError
    from data_pipelines.layout import DatasetLayoutError

    try:
        paths = evaluate_run(args)
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
