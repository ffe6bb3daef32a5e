"""The paper's evaluation of a trained run: every image of a split once, metrics with CIs, report.

    run = load_run("runs/oct")
    paths = evaluate_run(run, EvalData(split="test"), make_mesh(), bootstrap=1000)

Runs every image of the split once through the sharded eval forward (padding dropped, each
image counted exactly once over devices and processes; checked), and writes into ``out``
(default ``<workdir>/eval/<split>``): ``report.json`` (every metric with its bootstrap CI,
model, weights, data set, image and patient counts, git commit), ``predictions.csv`` (path,
patient, label, prediction, class probabilities, referral decision) and ``report.html``. The
split is opened by the run's own data policy (``engine.run_data.open_split``). A task=isl run
goes to its own metrics (``engine.evaluation.isl``).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh

from data_pipelines.datasets import declared_tasks
from data_pipelines.pipeline import make_eval_iterator
from engine.evaluation import metrics
from engine.evaluation.isl import evaluate_isl
from engine.evaluation.request import EvalData
from engine.inference import SkippedImages, TrainedRun
from engine.reports import classification as report
from engine.reports.predictions import prediction_rows
from engine.run_data import open_split
from engine.workdir import library_versions

__all__ = ["EvalData", "evaluate_run"]


def evaluate_run(
    run: TrainedRun,
    data: EvalData,
    mesh: Mesh,
    *,
    out: Path | None = None,
    batch_size: int | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Path]:
    """Evaluate ``run`` on ``data``; returns the written files by kind (empty off process 0).

    ``batch_size``: global (default the run's eval batch size), rounded down to a multiple of
    the mesh size. ``bootstrap`` patient resamples with ``seed`` give the 95% CIs.
    """
    out = out or run.workdir.root / "eval" / data.split
    if run.config.task == "isl":  # dense per-pixel task: its own metrics and report
        return evaluate_isl(
            run, data, mesh, out=out, batch_size=batch_size, bootstrap=bootstrap, seed=seed
        )
    config = run.config
    source = open_split(
        config,
        data.split,
        classes=run.class_names,
        dataset=data.dataset,
        data_dir=data.data_dir,
        on_bad_image=data.on_bad_image,
    )
    if len(source) == 0:
        raise ValueError(f"{source.name}/{data.split}: no images to evaluate")
    batch = batch_size or run.record.eval_batch_size
    batch = max(mesh.size, batch // mesh.size * mesh.size)
    print(
        f"evaluating {config.model} step {run.step} ({run.checkpoint}) on "
        f"{source.name}/{data.split}: {len(source)} images, batch {batch}, {mesh.size} device(s)",
        flush=True,
    )
    # Files that fail to decode under on_bad_image="skip" are dropped and named, not counted.
    batches = SkippedImages(
        make_eval_iterator(
            source,
            run.record.eval_preprocess(),
            global_batch_size=batch,
            mesh=mesh,
            workers=config.workers,
        )
    )
    probs, index = run.predictor(mesh).predict(batches)
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
        run.class_names,
        tasks=declared_tasks(source.name),
        n_resamples=bootstrap,
        seed=seed,
    )
    versions = library_versions()
    data_dir = data.data_dir if data.data_dir is not None else config.data_dir
    provenance = {
        "workdir": str(run.workdir.root),
        "model": config.model,
        "pretrained": config.pretrained,
        "transfer": config.transfer,
        "weights_source": run.metadata.source,
        "checkpoint": run.checkpoint,
        "step": run.step,
        "dataset": source.name,
        "data_dir": None if data_dir is None else str(data_dir),
        "split": data.split,
        "classes": list(run.class_names),
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
    rows = prediction_rows([r.path for r in records], patients, labels, probs, run.class_names)
    paths = report.write_report(out, evaluation, provenance, rows)
    print_summary(evaluation)
    return paths


def print_summary(evaluation: metrics.Evaluation) -> None:
    """Balanced accuracy and per-class recall first, then the paper's metrics; warnings last."""
    lead = report.headline_keys(evaluation)
    rest = [k for k in evaluation.metrics if not k.startswith("per_class/") and k not in lead]
    for key in lead + rest:
        value = evaluation.metrics[key]
        lo, hi = evaluation.ci95.get(key, (float("nan"), float("nan")))
        name = key
        if key.startswith("per_class/"):
            name = key.replace("per_class/", "recall ").removesuffix("/sensitivity")
        print(f"  {name:34s} {100 * value:6.2f}%  (95% CI {100 * lo:.2f}-{100 * hi:.2f})")
    for warning in report.headline_warnings(evaluation):
        print(f"  WARNING: {warning}")
