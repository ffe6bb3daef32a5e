"""A trained run, loaded back for evaluation, prediction and occlusion.

    run = load_run("runs/oct")                      # best checkpoint (latest if none)
    probs, index = predict_probabilities(run.model, eval_iterator, mesh, metadata=run.metadata)

``predict_probabilities`` runs the jitted eval forward sharded over the mesh and drops the
padding of the last batch, so each example of the source is returned exactly once, even
when several processes feed the mesh.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

import models
from engine.checkpoints import restore_model_variables
from engine.evaluation.validation import gather_outputs, host_rows
from engine.state import place_replicated_keys
from engine.steps import make_forward
from engine.workdir import Workdir
from models.metadata import WeightMetadata


@dataclasses.dataclass
class TrainedRun:
    """A model restored from a workdir, in eval mode, with what is needed to feed it."""

    model: nnx.Module
    metadata: WeightMetadata  # preprocessing the run trained with
    config: dict[str, Any]  # <workdir>/config.json
    class_names: tuple[str, ...]
    step: int
    checkpoint: str  # "best" or "latest": where the weights came from
    workdir: Workdir


def load_run(workdir: str | Any, which: str = "best") -> TrainedRun:
    """Rebuild the model of ``workdir`` and load its ``which`` ("best" | "latest") checkpoint."""
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    config = wd.read_config()
    missing = [
        k
        for k in ("model", "num_classes", "in_channels", "metadata", "class_names")
        if k not in config
    ]
    if missing:
        raise ValueError(f"{wd.config_path}: missing keys {missing}")
    metadata = WeightMetadata.from_json(json.dumps(config["metadata"]))
    model = models.create(
        config["model"],
        num_classes=config["num_classes"],
        in_channels=config["in_channels"],
        rngs=nnx.Rngs(0),
        **{**metadata.model_kwargs, **config.get("model_kwargs", {})},
    )
    _, params, stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    target = {"params": nnx.to_pure_dict(params), "batch_stats": nnx.to_pure_dict(stats)}
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target
    )
    variables, step, source = restore_model_variables(wd, which, target)
    nnx.update(model, variables["params"], variables["batch_stats"])
    model.eval()
    return TrainedRun(model, metadata, config, tuple(config["class_names"]), step, source, wd)


class SkippedImages:
    """Passes eval batches through and records the source indices of skipped bad images.

    Under ``on_bad_image="skip"`` a file that fails to decode arrives masked out with its real
    ``index`` and ``bad`` True. Wrap the iterator, consume it, then compare the gathered
    indices with :meth:`expected` and name the files with :meth:`paths`::

        batches = SkippedImages(make_eval_iterator(source, ...))
        probs, index = predict_probabilities(model, batches, mesh, metadata=...)
        assert np.array_equal(index, batches.expected(len(source)))
    """

    def __init__(self, iterator: Iterable[dict[str, Any]]):
        self.iterator = iterator
        self.indices: list[int] = []

    def __iter__(self):
        for batch in self.iterator:
            if "bad" in batch:
                bad = host_rows(batch["bad"]).astype(bool)
                if bad.any():
                    self.indices.extend(int(i) for i in host_rows(batch["index"])[bad])
            yield batch

    def expected(self, size: int) -> np.ndarray:
        """Source indices that should have been seen: all of ``range(size)`` but the bad ones."""
        return np.setdiff1d(np.arange(size), np.asarray(self.indices, np.int64)).astype(np.int32)

    def paths(self, records: Any) -> list[str]:
        """The paths of the skipped files, in source order."""
        return [records[i].path for i in sorted(set(self.indices))]


def predict_probabilities(
    model: nnx.Module,
    iterator: Iterable[dict[str, Any]],
    mesh: Mesh,
    *,
    metadata: WeightMetadata | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities for every real example of ``iterator``.

    ``iterator`` yields ``data_pipelines.pipeline.make_eval_iterator`` batches: ``image``
    (uint8, normalised on the device with ``metadata``'s mean/std; float images are taken as
    normalised already), ``mask`` and ``index``. Returns (probs float32 [N, C], index int32
    [N]) sorted by index, padding dropped. The model runs in eval mode.
    """
    model.eval()
    graphdef, state = nnx.split(model)
    state = place_replicated_keys(state, mesh)
    batches = iter(iterator)
    first = next(batches, None)
    if first is None:
        return np.zeros((0, 0), np.float32), np.zeros((0,), np.int32)
    if np.issubdtype(first["image"].dtype, np.integer) and metadata is None:
        raise ValueError("uint8 images need `metadata` (mean/std) to be normalised on the device")
    forward = make_forward(graphdef, metadata or WeightMetadata(arch="unknown"), mesh)
    probs, index = gather_outputs(forward, (state,), itertools.chain([first], batches))
    return probs.astype(np.float32), index


def require_classification(run: TrainedRun, command: str) -> None:
    """Refuse, in one line, a dense-task (In Silico Labeling) run in a classification command."""
    task = run.config.get("task", "classification")
    if task != "classification":
        raise ValueError(
            f"{run.workdir.root} is a task={task} run; {command} works on classification runs "
            "(evaluate it with python -m launch.evaluate --workdir=...)"
        )
