"""A trained run, loaded back for evaluation, prediction and occlusion.

    run = load_run("runs/oct")                      # best checkpoint (latest if none)
    probs, index = run.predictor(mesh).predict(eval_iterator)

``config.json`` is read once into a typed ``engine.run_record.RunRecord``; the model runs
through ``engine.predictor.Predictor``, the engine's one sharded forward, which drops the
padding of the last batch, so each example of the source is returned exactly once, even
when several processes feed the mesh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

import models
from engine.checkpoints import restore_model_variables
from engine.config import TrainConfig
from engine.evaluation.validation import host_rows
from engine.predictor import Predictor
from engine.run_record import RunRecord
from engine.workdir import Workdir
from models.metadata import WeightMetadata


@dataclasses.dataclass
class TrainedRun:
    """A model restored from a workdir, in eval mode, with what is needed to feed it."""

    model: nnx.Module
    record: RunRecord  # <workdir>/config.json, typed
    step: int
    checkpoint: str  # "best" or "latest": where the weights came from
    workdir: Workdir

    @property
    def config(self) -> TrainConfig:
        return self.record.config

    @property
    def metadata(self) -> WeightMetadata:
        """The preprocessing the run trained with."""
        return self.record.metadata

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.record.class_names

    def predictor(self, mesh: Mesh) -> Predictor:
        """The model's sharded forward on ``mesh``, fed as the run trained."""
        return Predictor(self.model, self.metadata, mesh)


def read_record(workdir: str | Path | Workdir) -> RunRecord:
    """The typed ``config.json`` of ``workdir``."""
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    return RunRecord.from_dict(wd.read_config(), wd.config_path)


def load_run(workdir: str | Path | Workdir, which: str = "best") -> TrainedRun:
    """Rebuild the model of ``workdir`` and load its ``which`` ("best" | "latest") checkpoint."""
    wd = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    record = read_record(wd)
    config, metadata = record.config, record.metadata
    model = models.create(
        config.model,
        num_classes=record.num_classes,
        in_channels=config.in_channels,
        rngs=nnx.Rngs(0),
        **{**metadata.model_kwargs, **config.model_kwargs},
    )
    _, params, stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    target = {"params": nnx.to_pure_dict(params), "batch_stats": nnx.to_pure_dict(stats)}
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target
    )
    variables, step, source = restore_model_variables(wd, which, target)
    nnx.update(model, variables["params"], variables["batch_stats"])
    model.eval()
    return TrainedRun(model, record, step, source, wd)


class SkippedImages:
    """Passes eval batches through and records the source indices of skipped bad images.

    Under ``on_bad_image="skip"`` a file that fails to decode arrives masked out with its real
    ``index`` and ``bad`` True. Wrap the iterator, consume it, then compare the gathered
    indices with :meth:`expected` and name the files with :meth:`paths`::

        batches = SkippedImages(make_eval_iterator(source, ...))
        probs, index = run.predictor(mesh).predict(batches)
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


def require_classification(run: TrainedRun, command: str) -> None:
    """Refuse, in one line, a dense-task (In Silico Labeling) run in a classification command."""
    task = run.config.task
    if task != "classification":
        raise ValueError(
            f"{run.workdir.root} is a task={task} run; {command} works on classification runs "
            "(evaluate it with python -m launch.evaluate --workdir=...)"
        )
