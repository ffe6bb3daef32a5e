"""Grain assembly: sources + per-example ops -> global batches on the mesh.

Training: a seeded shuffle reshuffled every epoch, endless, each JAX process taking every
``process_count``-th example of the global order, drop-remainder batches. Evaluation: one pass
in source order, padded to whole global batches, ``mask`` False and ``index`` -1 on padding,
so every example is counted exactly once over all devices and hosts.

Determinism: every random choice is a function of (seed, position), never of the worker that
computes it, so thread and process workers give identical batches whatever their number. The
returned iterators are Grain ``DatasetIterator``s: ``get_state``/``set_state``, and Orbax
saves them with ``grain.checkpoint.CheckpointSave(it)``; a restored iterator continues with
exactly the next batch.

Bad images met while decoding follow the source's ``on_bad_image``: ``error`` raises (the file
is named); ``skip`` logs the file and yields a masked-out example that keeps its real ``index``
and has ``bad`` True (``mask`` False), so batch shapes and the order of everything else are
unchanged and consumers can drop the file and name it (``engine.inference.SkippedImages``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import grain
import numpy as np
from jax.sharding import Mesh

from data_pipelines.device import check_batch_size, to_global
from data_pipelines.integrity import BadImageError
from data_pipelines.preprocess import PreprocessConfig, load_image
from data_pipelines.records import ImageSource
from data_pipelines.splits import class_balanced_order

log = logging.getLogger(__name__)


class _ReadExample(grain.transforms.Map):
    """Source position -> ``{"image", "label", "mask", "index", "bad"}``; -1 gives padding.

    ``bad`` is True only for an image that failed to decode under ``on_bad_image="skip"``;
    such an example is masked out but keeps its source ``index``.

    Classes (not closures) so that worker processes can unpickle them.
    """

    def __init__(self, source: ImageSource, cfg: PreprocessConfig):
        self.source = source
        self.cfg = cfg
        self.on_bad_image = getattr(source, "on_bad_image", "error")

    def _padding(self, index: int = -1, bad: bool = False) -> dict[str, Any]:
        return {
            "image": np.zeros(self.cfg.output_shape, np.uint8),
            "label": np.int32(0),
            "mask": np.False_,
            "index": np.int32(index),
            "bad": np.bool_(bad),
        }

    def read(self, index: Any, rng: np.random.Generator | None) -> dict[str, Any]:
        index = int(index)
        if index < 0:
            return self._padding()
        element = self.source[index]
        pixels = element.get("image_bytes", element.get("image", element["path"]))
        try:
            image = load_image(pixels, self.cfg, rng, name=element["path"])
        except BadImageError as err:
            if self.on_bad_image != "skip":
                raise
            log.warning("skipped bad image %s: %s (masked out of its batch)", err.path, err.problem)
            return self._padding(index, bad=True)
        return {
            "image": image,
            "label": np.int32(element["label"]),
            "mask": np.True_,
            "index": np.int32(index),
            "bad": np.False_,
        }

    def map(self, index: Any) -> dict[str, Any]:
        return self.read(index, None)


class _ReadAugmentedExample(grain.transforms.RandomMap):
    """``_ReadExample`` with Grain's per-position generator for the augmentation."""

    def __init__(self, source: ImageSource, cfg: PreprocessConfig):
        self.reader = _ReadExample(source, cfg)

    def random_map(self, index: Any, rng: np.random.Generator) -> dict[str, Any]:
        return self.reader.read(index, rng)


def _read(ds: grain.MapDataset, source: ImageSource, cfg: PreprocessConfig) -> grain.MapDataset:
    if cfg.augment:
        return ds.random_map(_ReadAugmentedExample(source, cfg))
    return ds.map(_ReadExample(source, cfg))


class _EvalPosition(grain.transforms.Map):
    """Padded per-process position -> source index (-1 past the end).

    Global batch ``s`` holds source positions ``s*G .. s*G+G-1``; process ``p`` reads
    ``s*G + p*b .. s*G + p*b+b-1`` of them (``b = G / process_count``). Which rows of the
    global array they land in follows the mesh's device order; the ``index`` field travels
    with each row, so every example is counted once either way.
    """

    def __init__(self, size: int, global_batch: int, local_batch: int, process_index: int):
        self.size, self.global_batch, self.local_batch = size, global_batch, local_batch
        self.process_index = process_index

    def map(self, position: int) -> int:
        step, row = divmod(int(position), self.local_batch)
        index = step * self.global_batch + self.process_index * self.local_batch + row
        return index if index < self.size else -1


def _assemble(
    ds: grain.MapDataset,
    *,
    local_batch: int,
    drop_remainder: bool,
    mesh: Mesh,
    workers: int,
    threads: int | None,
) -> grain.DatasetIterator:
    """Shared tail: read in threads or worker processes, batch, place on the mesh.

    Batch ``k`` is always positions ``k*b .. k*b+b-1``. Threads (``workers=0``) read single
    examples, so all threads stay busy up to the last batch; worker processes take whole
    batches round-robin (batching happens before the hand-off), which gives the same batches.
    """
    threads = threads if threads is not None else min(16, os.cpu_count() or 1)
    if workers > 0:
        ds = ds.batch(local_batch, drop_remainder=drop_remainder)
        ids = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
        _absl_flags_parsed()
        ids = ids.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    else:
        options = grain.ReadOptions(
            num_threads=max(threads, 1), prefetch_buffer_size=max(2 * local_batch, 4 * threads)
        )
        ids = ds.to_iter_dataset(options).batch(local_batch, drop_remainder=drop_remainder)
    ids = ids.map(lambda batch: to_global(batch, mesh))
    return iter(ids)


def _absl_flags_parsed() -> None:
    """Grain 0.2.18 reads absl flags when starting workers and raises UnparsedFlagAccessError
    if nobody parsed them (grain issue 1355); our entry points use argparse."""
    try:
        from absl import flags
    except ImportError:
        return
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _process_index_count() -> tuple[int, int]:
    import jax

    return jax.process_index(), jax.process_count()


def make_train_iterator(
    source: ImageSource,
    cfg: PreprocessConfig,
    *,
    global_batch_size: int,
    mesh: Mesh,
    seed: int,
    workers: int = 0,
    class_balanced: bool = False,
    threads: int | None = None,
) -> grain.DatasetIterator:
    """Endless training batches ``{"image" uint8 [B,H,W,C], "label" int32, "mask" bool,
    "index" int32, "bad" bool}`` as global arrays sharded on ``data``.

    ``workers``: 0 decodes in ``threads`` threads of this process; N > 0 uses N worker
    processes (the entry point needs ``if __name__ == "__main__":``). ``class_balanced``
    oversamples rare classes so every epoch has as many examples of each class as of the
    largest.
    """
    if len(source) == 0:
        raise ValueError(f"{source!r} has no examples to train on")
    local_batch = check_batch_size(global_batch_size, mesh)
    process_index, process_count = _process_index_count()
    if class_balanced:
        order = class_balanced_order(np.array([r.label for r in source.records]))
        ds = grain.MapDataset.source(order.tolist())
    else:
        ds = grain.MapDataset.range(len(source))
    if len(ds) < global_batch_size:
        raise ValueError(
            f"{source!r}: {len(ds)} examples per epoch is fewer than "
            f"global_batch_size={global_batch_size}"
        )
    ds = ds.seed(seed).shuffle().repeat(None)
    ds = ds[process_index::process_count]
    ds = _read(ds, source, cfg)
    return _assemble(
        ds,
        local_batch=local_batch,
        drop_remainder=True,
        mesh=mesh,
        workers=workers,
        threads=threads,
    )


def eval_steps(size: int, global_batch_size: int) -> int:
    """Global batches needed to see ``size`` examples once (the last one padded)."""
    return -(-size // global_batch_size)


def make_eval_iterator(
    source: ImageSource,
    cfg: PreprocessConfig,
    *,
    global_batch_size: int,
    mesh: Mesh,
    workers: int = 0,
    threads: int | None = None,
) -> grain.DatasetIterator:
    """One pass over ``source`` in order, as global batches; the last one padded.

    Adds ``"index"`` (position in ``source``, -1 on padding), ``"mask"`` (False on
    padding and on skipped bad images) and ``"bad"`` (True on skipped bad images). Every
    process yields the same number of batches.
    """
    local_batch = check_batch_size(global_batch_size, mesh)
    process_index, _ = _process_index_count()
    steps = eval_steps(len(source), global_batch_size)
    ds = grain.MapDataset.range(steps * local_batch)
    ds = ds.map(_EvalPosition(len(source), global_batch_size, local_batch, process_index))
    ds = _read(ds, source, cfg.replace(augment=False))
    return _assemble(
        ds,
        local_batch=local_batch,
        drop_remainder=False,
        mesh=mesh,
        workers=workers,
        threads=threads,
    )
