"""An occlusion study of a trained run on image files: read, occlude, compare, write.

    files = open_image_files(["scans/"], run.class_names)
    study = run_study(run, files, OcclusionConfig(window=20, stride=4), mesh, out="runs/oct/occ")
    study.summary.lesion_check          # engine.reports.heatmaps.LesionCheck, or None

The files are read through the data pipeline's eval iterator (``data_pipelines.image_files``:
one decode per file, a batch at a time) and each batch of images goes through
:func:`engine.occlusion.sweep.occlusion_sensitivity` on the run's
:class:`~engine.predictor.Predictor`. An approximate method is also computed exactly and its
fidelity reported (unless ``fidelity=False``). ``engine.reports.heatmaps.write_study`` writes
``heatmaps.npz``, overlays, ``index.html`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from data_pipelines.image_files import ImageFiles
from data_pipelines.pipeline import make_eval_iterator
from data_pipelines.preprocess import PreprocessConfig, load_image
from engine.evaluation.validation import host_rows
from engine.inference import SkippedImages, TrainedRun
from engine.occlusion import fidelity as heatmap_fidelity
from engine.occlusion.sweep import OcclusionConfig, OcclusionResult, occlusion_sensitivity
from engine.reports.heatmaps import StudySummary, write_study

TARGETS = ("predicted", "label")
IMAGES_PER_BATCH = 64  # images decoded and occluded together (rounded to the mesh size)


@dataclasses.dataclass(frozen=True)
class Study:
    """One finished study: what was written, the maps, and what could not be read."""

    summary: StudySummary
    result: OcclusionResult
    paths: list[str]  # the images studied, in result order
    seconds: float  # the occlusion computation (reading included), exact fidelity pass excluded
    # Approximate vs exact (None: an exact method, or the check skipped).
    fidelity: heatmap_fidelity.Fidelity | None
    unreadable: list[str]  # "path: problem", one per file left out


def read_batches(
    files: ImageFiles, cfg: PreprocessConfig, mesh: Mesh, *, batch: int = IMAGES_PER_BATCH
) -> tuple[Iterator[tuple[np.ndarray, np.ndarray]], SkippedImages]:
    """``(source indices, uint8 images)`` per eval batch of ``files`` (padding and files that
    fail to decode dropped), and the :class:`SkippedImages` that names the latter."""
    batch = max(mesh.size, batch // mesh.size * mesh.size)
    skipped = SkippedImages(
        make_eval_iterator(files.source, cfg, global_batch_size=batch, mesh=mesh)
    )

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for element in skipped:
            index = host_rows(element["index"]).astype(np.int64)
            keep = (index >= 0) & host_rows(element["mask"]).astype(bool)
            if keep.any():
                yield index[keep], host_rows(element["image"])[keep]

    return batches(), skipped


class _ModelInputs:
    """``images[i]``: the model input of image ``i``, decoded on demand (an overlay fallback)."""

    def __init__(self, paths: list[str], cfg: PreprocessConfig):
        self.paths, self.cfg = paths, cfg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return load_image(Path(self.paths[i]), self.cfg)


def _concatenate(results: list[OcclusionResult]) -> OcclusionResult:
    first = results[0]
    return dataclasses.replace(
        first,
        probabilities=np.concatenate([r.probabilities for r in results]),
        targets=np.concatenate([r.targets for r in results]),
        drops=np.concatenate([r.drops for r in results]),
    )


def run_study(
    run: TrainedRun,
    files: ImageFiles,
    config: OcclusionConfig,
    mesh: Mesh,
    out: str | Path,
    *,
    target: str = "predicted",
    overlays: bool = True,
    fidelity: bool = True,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
) -> Study:
    """Occlusion maps of every readable file of ``files`` for ``run``, written into ``out``.

    ``target``: ``"predicted"`` (the unoccluded prediction) or ``"label"`` (the folder's
    class; open ``files`` with ``strict_labels=True``). ``provenance``: extra entries for
    ``summary.json``. ``progress``: tqdm bars over the images and the overlays.
    """
    if target not in TARGETS:
        raise ValueError(f"target {target!r} is not one of {TARGETS}")
    if len(files) == 0:
        raise ValueError("no readable images")
    cfg = run.record.eval_preprocess()
    predictor = run.predictor(mesh)
    approximate = config.method == "approximate" and fidelity
    results, exact_results, indices = [], [], []
    exact_seconds = 0.0
    start = time.perf_counter()
    batches, skipped = read_batches(files, cfg, mesh)
    with tqdm(total=len(files), desc="occlusion", unit="image", disable=not progress) as bar:
        for index, images in batches:
            targets = files.labels[index] if target == "label" else None
            kwargs = {"targets": targets, "mesh": mesh}
            results.append(
                occlusion_sensitivity(
                    predictor.apply_fn, predictor.variables, images, config=config, **kwargs
                )
            )
            if approximate:
                t = time.perf_counter()
                exact_results.append(
                    occlusion_sensitivity(
                        predictor.apply_fn,
                        predictor.variables,
                        images,
                        config=config.exact(),
                        **kwargs,
                    )
                )
                exact_seconds += time.perf_counter() - t
            indices.append(index)
            bar.update(len(index))
    seconds = time.perf_counter() - start - exact_seconds
    undecodable = skipped.paths(files.source.records)
    unreadable = files.errors + [f"{p}: could not be decoded" for p in undecodable]
    if not results:
        raise ValueError("no readable images")
    result = _concatenate(results)
    index = np.concatenate(indices)
    paths = [files.paths[i] for i in index]
    scores = None
    if approximate:
        scores = dataclasses.replace(
            heatmap_fidelity.compare(result, _concatenate(exact_results)),
            exact_seconds=round(exact_seconds, 2),
        )
    boxes = None
    if files.boxes_file is not None:
        records = files.source.records
        boxes = np.stack(
            [
                files.crop(i, cfg).to_input(records[i].lesion_box)
                if records[i].lesion_box
                else np.full(4, -1.0)
                for i in index
            ]
        )
    summary = write_study(
        out,
        result,
        _ModelInputs(paths, cfg),
        paths,
        run.class_names,
        config,
        labels=files.labels[index],
        lesion_boxes=boxes,
        provenance={
            "workdir": str(run.workdir.root),
            "model": run.config.model,
            "step": run.step,
            "checkpoint": run.checkpoint,
            "target": target,
            "devices": mesh.size,
            "seconds": round(seconds, 2),
            "unreadable": unreadable,
            **(provenance or {}),
            "method": config.method,
            **({"fidelity": scores.to_dict()} if scores is not None else {}),
        },
        overlays=overlays,
        progress=progress,
        geometry=(cfg.input_size, cfg.resize_size),
    )
    return Study(summary, result, paths, seconds, scores, unreadable)
