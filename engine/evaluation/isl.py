"""The evaluation of an In Silico Labeling run: pixel-wise Pearson r per label, with CIs.

Restores the run's checkpoint, predicts every well of the split by tiling it
(``engine.dense_task.predict_wells``), and writes into ``out`` (default
``<workdir>/eval/<split>``):

- ``report.json``: ``metrics`` with ``pearson/<label>`` (pixel-wise r over the valid pixels of
  all wells of the split), ``ci95`` (percentile bootstrap over wells), per-label pixel and
  well counts, and provenance (model, checkpoint, data set, wells, git commit);
- ``report.html``: for a few wells, input planes beside true and predicted fluorescence per
  label, and per label a predicted-vs-true intensity scatter plot (self-contained: PNGs and
  SVG inline).
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from engine.dense_task import model_geometry, open_source, predict_wells
from engine.evaluation.pixel_metrics import pearson_by_label, well_sums
from engine.evaluation.request import EvalData
from engine.inference import TrainedRun
from engine.reports import svg
from engine.reports.classification import write_json
from engine.state import place_replicated_keys
from engine.steps import make_forward
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
        f"{len(source)} wells, tiles {geometry.eval_in} -> {geometry.eval_out} px, {mesh.size} device(s)",
        flush=True,
    )
    graphdef, state = nnx.split(trained.model)
    forward = make_forward(graphdef, trained.metadata, mesh, output="expected")
    predictions = predict_wells(
        forward, (place_replicated_keys(state, mesh),), source, geometry, batch, mesh
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
    page = render_html(document, source, predictions)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").write_text(page, encoding="utf-8")
    paths["html"] = out / "report.html"
    for label, row in table.items():
        ci = "" if row["ci_low"] is None else f"  (95% CI {row['ci_low']:.3f}-{row['ci_high']:.3f})"
        print(f"  pearson/{label:28s} {row['r']:.4f}{ci}  [{row['wells']} wells]")
    return paths


def _png(image: np.ndarray) -> str:
    """A [0, 1] grey image as an inline PNG ``<img>`` (scaled up 2x, nearest)."""
    from PIL import Image

    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((pixels.shape[1] * 2, pixels.shape[0] * 2), Image.NEAREST).save(
        buffer, format="PNG"
    )
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _stretch(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99])
    return (image - lo) / max(hi - lo, 1e-6)


def render_html(document: dict[str, Any], source: Any, predictions: list[np.ndarray]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{row['r']:.4f}</td><td>"
        + ("-" if row["ci_low"] is None else f"{row['ci_low']:.4f} - {row['ci_high']:.4f}")
        + f"</td><td>{row['wells']}</td><td>{row['pixels']}</td></tr>"
        for label, row in document["per_label"].items()
    )
    prov = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in document["provenance"].items()
    )
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
        figures = "".join(
            f"<figure>{_png(im)}<figcaption>{html.escape(t)}</figcaption></figure>"
            for t, im in cells
        )
        panels.append(f"<h3>{html.escape(example['well'])}</h3><div class=row>{figures}</div>")
    scatters = []
    for j, label in enumerate(source.labels):
        xs, ys = [], []
        for i, pred in enumerate(predictions):
            keep = source[i]["target_mask"][..., j] > 0.5
            xs.append(source[i]["target"][..., j][keep])
            ys.append(pred[..., j][keep])
        if sum(len(x) for x in xs):
            r = document["per_label"][label]["r"]
            scatters.append(
                svg.scatter_svg(
                    f"{label} (r = {r:.3f})",
                    np.concatenate(xs),
                    np.concatenate(ys),
                    x_label="true intensity",
                    y_label="predicted intensity",
                )
            )
    style = (
        "body{font-family:sans-serif;margin:24px;max-width:1400px}table{border-collapse:collapse;"
        "margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        ".row{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}figcaption{font-size:11px}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>In Silico Labeling report</title>"
        f"<style>{style}</style></head><body><h1>In Silico Labeling: evaluation</h1>"
        "<h2>Pixel-wise Pearson r per label</h2><table><tr><th>label</th><th>r</th>"
        "<th>95% CI (bootstrap over wells)</th><th>wells</th><th>pixels</th></tr>"
        f"{rows}</table><h2>Predicted vs true intensity</h2><div class=row>{''.join(scatters)}</div>"
        f"<h2>Wells: input, true and predicted</h2>{''.join(panels)}<h2>Provenance</h2><table>{prov}</table>"
        "</body></html>\n"
    )
