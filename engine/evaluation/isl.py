"""The evaluation of an In Silico Labeling run: pixel-wise Pearson r per label, with CIs.

Restores the run's checkpoint, predicts every well of the split by tiling it
(``engine.dense_task.predict_wells``), and writes into ``out`` (default
``<workdir>/eval/<split>``):

- ``report.json``: ``metrics`` with ``pearson/<label>`` (pixel-wise r over the valid pixels of
  all wells of the split), ``ci95`` (percentile bootstrap over wells), per-label pixel and
  well counts, and provenance (model, checkpoint, data set, wells, git commit);
- ``report.html``: for a few wells, input planes beside true and predicted fluorescence per
  label, and per label a predicted-vs-true intensity scatter plot (matplotlib, also written
  beside the page as ``scatter_<label>.png``); self-contained: every PNG inline.
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from PIL import Image

from engine.dense_task import model_geometry, open_source, predict_wells
from engine.evaluation.pixel_metrics import pearson_by_label, well_sums
from engine.evaluation.request import EvalData
from engine.inference import TrainedRun
from engine.predictor import Predictor
from engine.reports import charts
from engine.reports.pages import ChartImage, chart_file_name, render
from engine.reports.writers import write_json, write_text
from engine.workdir import library_versions

log = logging.getLogger(__name__)

PANEL_WELLS = 3  # wells shown as image panels in report.html


def evaluate_isl(
    trained: TrainedRun,
    data: EvalData,
    mesh: Mesh,
    *,
    out: Path,
    batch_size: int | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Path]:
    """Evaluate ``trained`` (a task=isl run) on ``data``; see the module docstring."""
    config = trained.config
    held_out = data.split == "test"
    source = open_source(
        data.dataset or config.dataset,
        data.data_dir if data.data_dir is not None else config.data_dir,
        split=data.split,
        labels=trained.class_names,
        z_planes=config.in_channels,
        val_fraction=0.0 if held_out else config.val_fraction,
        seed=config.seed,
        max_wells=config.max_wells if data.split == "train" else None,
    )
    geometry = model_geometry(config, len(trained.class_names))
    batch = batch_size or config.eval_batch_size or config.batch_size
    print(
        f"evaluating isl step {trained.step} ({trained.checkpoint}) on {source.name}/{data.split}: "
        f"{len(source)} wells, tiles {geometry.eval_in} -> {geometry.eval_out} px, "
        f"{mesh.size} device(s)",
        flush=True,
    )
    predictions = predict_wells(
        Predictor(trained.model, trained.metadata, mesh), source, geometry, batch
    )
    sums = [
        well_sums(p, source[i]["target"], source[i]["target_mask"])
        for i, p in enumerate(predictions)
    ]
    table = pearson_by_label(
        sums, source.well_ids(), source.labels, n_resamples=bootstrap, seed=seed
    )
    versions = library_versions()
    provenance = {
        "workdir": str(trained.workdir.root),
        "task": "isl",
        "model": config.model,
        "model_kwargs": config.model_kwargs,
        "init_from": config.init_from,
        "checkpoint": trained.checkpoint,
        "step": trained.step,
        "dataset": source.name,
        "split": data.split,
        "labels": list(source.labels),
        "wells": source.well_ids(),
        "z_planes": config.in_channels,
        "tile_input_output": [geometry.eval_in, geometry.eval_out],
        "devices": mesh.size,
        "git_commit": versions.get("git_commit"),
        "jax": versions.get("jax"),
    }
    if jax.process_index() != 0:
        return {}
    document = {
        "metrics": {f"pearson/{label}": row["r"] for label, row in table.items()},
        "ci95": {
            f"pearson/{label}": [row["ci_low"], row["ci_high"]] for label, row in table.items()
        },
        "per_label": table,
        "bootstrap": {
            "unit": "well",
            "resamples": bootstrap,
            "seed": seed,
            "level": 0.95,
        },
        "provenance": provenance,
    }
    paths = {"json": write_json(out / "report.json", document)}
    paths["html"] = write_html(out, document, source, predictions)
    for label, row in table.items():
        ci = "" if row["ci_low"] is None else f"  (95% CI {row['ci_low']:.3f}-{row['ci_high']:.3f})"
        print(f"  pearson/{label:28s} {row['r']:.4f}{ci}  [{row['wells']} wells]")
    return paths


def _png(image: np.ndarray) -> str:
    """A [0, 1] grey image as an inline PNG data URI (scaled up 2x, nearest)."""
    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize(
        (pixels.shape[1] * 2, pixels.shape[0] * 2), Image.Resampling.NEAREST
    ).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _stretch(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99])
    return (image - lo) / max(hi - lo, 1e-6)


def _panels(source: Any, predictions: list[np.ndarray]) -> list[tuple[str, list[tuple[str, str]]]]:
    """For the first :data:`PANEL_WELLS` wells: (well, [(caption, PNG data URI)]): three input
    planes, then each label's true and predicted fluorescence where the well has that label."""
    panels = []
    for i in range(min(PANEL_WELLS, len(source))):
        example, pred = source[i], predictions[i]
        stack = example["image"]
        cells = [
            ("input z first", _stretch(stack[..., 0])),
            ("input z middle", _stretch(stack[..., stack.shape[-1] // 2])),
            ("input z last", _stretch(stack[..., -1])),
        ]
        for j, label in enumerate(source.labels):
            if example["target_mask"][..., j].any():
                cells += [
                    (f"{label} true", example["target"][..., j]),
                    (f"{label} predicted", pred[..., j]),
                ]
        panels.append((str(example["well"]), [(t, _png(im)) for t, im in cells]))
    return panels


def scatter_charts(
    document: dict[str, Any], source: Any, predictions: list[np.ndarray]
) -> list[ChartImage]:
    """Per label with valid pixels: predicted against true intensity over every well."""
    drawn = []
    for j, label in enumerate(source.labels):
        xs, ys = [], []
        for i, pred in enumerate(predictions):
            keep = source[i]["target_mask"][..., j] > 0.5
            xs.append(source[i]["target"][..., j][keep])
            ys.append(pred[..., j][keep])
        if sum(len(x) for x in xs):
            title = f"{label} (r = {document['per_label'][label]['r']:.3f})"
            figure = charts.scatter_figure(
                title,
                np.concatenate(xs),
                np.concatenate(ys),
                x_label="true intensity",
                y_label="predicted intensity",
            )
            drawn.append(
                ChartImage(chart_file_name(f"scatter_{label}"), title, charts.png_bytes(figure))
            )
    return drawn


def render_html(
    document: dict[str, Any],
    source: Any,
    predictions: list[np.ndarray],
    scatters: list[ChartImage] | None = None,
) -> str:
    """report.html (``scatters``: :func:`scatter_charts`'s result, drawn here when not given)."""
    rows = [
        (
            label,
            f"{row['r']:.4f}",
            "-" if row["ci_low"] is None else f"{row['ci_low']:.4f} - {row['ci_high']:.4f}",
            row["wells"],
            row["pixels"],
        )
        for label, row in document["per_label"].items()
    ]
    return render(
        "isl_report.html.j2",
        rows=rows,
        scatters=scatter_charts(document, source, predictions) if scatters is None else scatters,
        panels=_panels(source, predictions),
        provenance=[(str(k), str(v)) for k, v in document["provenance"].items()],
    )


def write_html(
    out: Path, document: dict[str, Any], source: Any, predictions: list[np.ndarray]
) -> Path:
    """Write report.html and its scatter PNGs into ``out``; returns the page's path."""
    scatters = scatter_charts(document, source, predictions)
    for chart in scatters:
        chart.write(out)
    return write_text(
        Path(out) / "report.html", render_html(document, source, predictions, scatters)
    )
