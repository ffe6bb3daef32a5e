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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

import models
from data_pipelines.image_files import ImageFiles
from data_pipelines.pipeline import make_eval_iterator
from engine.checkpoints import restore_model_variables
from engine.config import TrainConfig
from engine.evaluation.validation import host_rows
from engine.predictor import Predictor
from engine.run_record import RunRecord
from engine.workdir import Workdir
from models.loading import WEIGHT_TYPES
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
    model = abstract_model(
        lambda: models.create(
            config.model,
            num_classes=record.num_classes,
            in_channels=config.in_channels,
            rngs=nnx.Rngs(0),
            **{**metadata.model_kwargs, **config.model_kwargs},
        )
    )
    _, params, stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = {"params": nnx.to_pure_dict(params), "batch_stats": nnx.to_pure_dict(stats)}
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), target)
    variables, step, source = restore_model_variables(wd, which, target)
    nnx.update(model, variables["params"], variables["batch_stats"])
    model.eval()
    return TrainedRun(model, record, step, source, wd)


def abstract_model(build: Callable[[], nnx.Module]) -> nnx.Module:
    """The module ``build`` makes, without computing its random initial weights.

    Parameters and BatchNorm statistics stay abstract (shapes only) until a checkpoint or
    weight file fills every one of them; RNG keys and counters (dropout streams) are made
    concrete. Building a network this way costs a trace, not an initialisation.
    """
    graphdef, weights, rest = nnx.split(nnx.eval_shape(build), WEIGHT_TYPES, ...)
    return nnx.merge(graphdef, weights, jax.tree.map(_concrete, rest))


def _concrete(x: jax.ShapeDtypeStruct) -> jax.Array:
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.split(jax.random.key(0), x.shape) if x.shape else jax.random.key(0)
    return jnp.zeros(x.shape, x.dtype)


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


@dataclasses.dataclass(frozen=True)
class FilePredictions:
    """A run's class probabilities for image files, in file order (unreadable ones left out)."""

    paths: list[str]
    probabilities: np.ndarray  # [N, K]
    labels: np.ndarray  # [N] class of the parent folder, -1 when it is none
    patients: list[str]
    unreadable: list[str]  # "path: problem", one per file left out


def predict_files(
    run: TrainedRun, files: ImageFiles, mesh: Mesh, *, batch_size: int | None = None
) -> FilePredictions:
    """Every readable file of ``files`` through ``run``'s predictor, read by the eval iterator.

    ``batch_size``: global (default the run's eval batch size, at most the file count rounded
    up to the mesh), so one image costs one small batch.
    """
    batch = batch_size or min(run.record.eval_batch_size, max(len(files), 1))
    batch = -(-batch // mesh.size) * mesh.size
    batches = SkippedImages(
        make_eval_iterator(
            files.source, run.record.eval_preprocess(), global_batch_size=batch, mesh=mesh
        )
    )
    probs, index = run.predictor(mesh).predict(batches)
    undecodable = batches.paths(files.source.records)
    records = [files.source.records[i] for i in index]
    return FilePredictions(
        paths=[r.path for r in records],
        probabilities=probs,
        labels=files.labels[index],
        patients=[r.patient for r in records],
        unreadable=files.errors + [f"{p}: could not be decoded" for p in undecodable],
    )


def require_classification(run: TrainedRun, command: str) -> None:
    """Refuse, in one line, a dense-task (In Silico Labeling) run in a classification command."""
    task = run.config.task
    if task != "classification":
        raise ValueError(
            f"{run.workdir.root} is a task={task} run; {command} works on classification runs "
            "(evaluate it with python -m launch.evaluate --workdir=...)"
        )
