"""The dense per-pixel task (In Silico Labeling) as the trainer's second task family.

A run declares its task (``TrainConfig.task``): ``classification`` is the trainer's own path;
``isl`` is this module. The trainer asks it, at four points, only for what differs:

- ``open_data``: wells (``data_pipelines.isl``) instead of labelled images, the label names
  as the run's output names, and the model's crop geometry;
- ``examples``: how many crops make an epoch (``data_pipelines.isl.crops_per_epoch``);
- ``init_from``: another run's weights with heads matched by label name, a new label getting
  a fresh head (the paper's transfer to a new label in a new condition);
- ``setup``: the jitted masked per-pixel step, the random-crop Grain iterator, and
  validation by tiling whole held-out wells (pixel-wise Pearson r per label).

The loop, the mesh and shardings, hooks, checkpoints (with the Grain iterator), resume,
TensorBoard and metrics.jsonl are the trainer's, shared with classification.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

import models
from data_pipelines.isl import (
    WHERE,
    crops_per_epoch,
    make_crop_iterator,
    open_isl,
    stitch_tiles,
    tile_well,
)
from data_pipelines.isl_synthetic import cached_condition
from data_pipelines.layout import DatasetLayoutError
from engine.config import TrainConfig
from engine.evaluation.pixel_metrics import pearson_by_label, well_sums
from engine.evaluation.validation import host_rows
from engine.inference import load_run
from engine.loop import StepSetup
from engine.losses import masked_pixel_cross_entropy
from engine.mesh import batch_sharding
from engine.predictor import Predictor, eval_states
from engine.run_data import RunData
from engine.state import ModelDef, TrainState
from engine.steps import TrainStep, compute_dtype, jit_train_step
from models.loading import flat_state, load_flat_state

if TYPE_CHECKING:  # the trainer calls this module: a runtime import would be a cycle
    from engine.trainer import BuiltRun

log = logging.getLogger(__name__)

SYNTHETIC = {"isl_synthetic_a": "a", "isl_synthetic_b": "b"}
DATASETS = ("isl", *SYNTHETIC)  # "isl/<condition>" picks one condition of the published set
EVAL_OUTPUT = 64  # evaluation tiles: output side aimed at (the largest valid size <= this)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Input/output sides of training crops and evaluation tiles for the run's model."""

    train_in: int
    train_out: int
    eval_in: int
    eval_out: int


def model_geometry(config: TrainConfig, num_labels: int) -> Geometry:
    """Crop sizes from the model's own size rules (built abstractly: no weights computed)."""
    net = nnx.eval_shape(
        lambda: models.create(
            config.model,
            num_classes=num_labels,
            in_channels=config.in_channels,
            rngs=nnx.Rngs(0),
            **config.model_kwargs,
        )
    )
    if not hasattr(net, "input_size"):
        raise ValueError(
            f"task=isl needs a dense model (isl); {config.model} has no input_size rule"
        )
    train_in = net.input_size(config.output_size)
    eval_out = next(o for o in range(max(EVAL_OUTPUT, config.output_size), 0, -1) if _fits(net, o))
    return Geometry(train_in, config.output_size, net.input_size(eval_out), eval_out)


def _fits(net: Any, output: int) -> bool:
    try:
        net.input_size(output)
    except ValueError:
        return False
    return True


def open_source(
    dataset: str,
    data_dir: str | None,
    *,
    split: str,
    labels: Any,
    z_planes: int,
    val_fraction: float = 0.0,
    seed: int = 0,
    max_wells: int | None = None,
) -> Any:
    """One split of an ISL data set by name (``isl``, ``isl/<condition>``, ``isl_synthetic_*``).

    Synthetic sets without a ``data_dir`` are written once into the cache and read from there
    through the same layout reader as the published data.
    """
    name, _, condition = dataset.partition("/")
    if name not in DATASETS:
        raise ValueError(
            f"unknown ISL dataset {dataset!r}; expected one of {DATASETS} or isl/<condition>"
        )
    if data_dir is None:
        if name not in SYNTHETIC:
            raise DatasetLayoutError(f"--dataset={dataset} needs --data_dir. {WHERE}")
        data_dir = str(cached_condition(SYNTHETIC[name]))
    return open_isl(
        dataset,
        data_dir,
        split=split,
        labels=labels,
        z_planes=z_planes,
        val_fraction=val_fraction,
        seed=seed,
        max_wells=max_wells,
        condition=condition or None,
    )


class DenseTask:
    """The hooks the trainer calls for ``task="isl"`` (see the module docstring)."""

    name = "isl"

    def open_data(self, config: TrainConfig, metadata: Any = None) -> RunData:
        common = {
            "labels": config.labels,
            "z_planes": config.in_channels,
            "val_fraction": config.val_fraction,
            "seed": config.seed,
        }
        train = open_source(
            config.dataset, config.data_dir, split="train", max_wells=config.max_wells, **common
        )
        common["labels"] = train.labels
        val = None
        if config.val_fraction > 0:
            val = open_source(config.dataset, config.data_dir, split="val", **common)
        geometry = model_geometry(config, len(train.labels))
        if metadata is None:
            metadata = models.metadata_for(
                config.model, num_classes=len(train.labels), in_channels=config.in_channels
            )
            metadata = metadata.replace(input_size=geometry.train_in, class_names=train.labels)
        return RunData(train, val, train.labels, metadata, geometry, geometry)

    def examples(self, data: Any) -> int:
        return crops_per_epoch(data.train, data.train_cfg.train_out)

    def init_from(self, model: nnx.Module, config: TrainConfig, labels: tuple[str, ...]) -> None:
        """Weights of ``config.init_from``'s best checkpoint; label heads matched by name."""
        source = load_run(config.init_from, "best")
        if source.config.model != config.model or source.config.in_channels != config.in_channels:
            raise ValueError(
                f"--init_from={config.init_from} holds {source.config.model} on "
                f"{source.config.in_channels} z planes; this run is {config.model} on "
                f"{config.in_channels}"
            )
        weights = flat_state(source.model)
        mapped = {k: v for k, v in weights.items() if not k.startswith("heads/")}
        new = []
        for i, label in enumerate(labels):
            if label in source.class_names:
                j = source.class_names.index(label)
                prefix = f"heads/{j}/"
                mapped |= {
                    f"heads/{i}/{k[len(prefix) :]}": v
                    for k, v in weights.items()
                    if k.startswith(prefix)
                }
            else:
                new.append(i)
        load_flat_state(
            model,
            mapped,
            source=f"{config.init_from} ({source.checkpoint})",
            skip=[f"heads/{i}" for i in new],
        )
        log.info(
            "initialised from %s step %d; new label heads: %s",
            config.init_from,
            source.step,
            [labels[i] for i in new] or "none",
        )

    def setup(self, run: BuiltRun) -> StepSetup:
        """The dense step, random-crop batches and well-tiling validation of a built run."""
        config, data, model_def, mesh, batch = (
            run.config,
            run.data,
            run.model_def,
            run.mesh,
            run.batch,
        )
        geometry: Geometry = data.train_cfg
        data_iter = make_crop_iterator(
            data.train,
            in_size=geometry.train_in,
            out_size=geometry.train_out,
            global_batch_size=batch,
            mesh=mesh,
            seed=config.seed,
            augment=config.augment,
            workers=config.workers,
        )
        step_fn = make_dense_train_step(model_def, run.tx, run.schedule, config, mesh)
        evaluate = None
        if data.val is not None:
            predictor = Predictor.from_train_state(
                model_def, run.state, data.metadata, mesh, dtype=compute_dtype(config.dtype)
            )
            eval_batch = config.eval_batch_size or batch

            def evaluate(state: TrainState) -> dict[str, float]:
                predictions = predict_wells(
                    predictor,
                    data.val,
                    geometry,
                    eval_batch,
                    variables=eval_states(model_def, state),
                )
                return pearson_summary(predictions, data.val, n_resamples=0)

        return StepSetup(step_fn, data_iter, evaluate)


def make_dense_train_step(
    model_def: ModelDef,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    config: TrainConfig,
    mesh: Mesh,
) -> TrainStep:
    """``step(state, batch) -> (state, metrics)``: masked per-pixel loss, jitted, state donated.

    ``metrics`` as the classification step's (the loop reads the same names): ``loss``,
    ``correct`` (per crop, the fraction of valid pixels whose arg-max intensity bin is right,
    so the logged ``accuracy`` is the pixel bin accuracy), ``count`` (crops), ``grad_norm``, ``lr``.
    """
    base_key = jax.random.key(config.seed)
    dtype = compute_dtype(config.dtype)

    def step(
        state: TrainState, batch: dict[str, jax.Array]
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        images = batch["image"].astype(dtype)
        rest = model_def.seeded_rest(jax.random.fold_in(base_key, state.step))

        def loss_fn(params):
            model = model_def.merge(params, state.frozen, state.batch_stats, train=True, rest=rest)
            logits, _ = model(images)
            loss, hits = masked_pixel_cross_entropy(
                logits, batch["target"], batch["target_mask"], batch["mask"]
            )
            return loss, (hits, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))

        (loss, (hits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        metrics = {
            "loss": loss,
            "correct": jnp.sum(hits),
            "count": jnp.sum(batch["mask"].astype(jnp.float32)),
            "grad_norm": optax.tree.norm(grads),
            "lr": jnp.asarray(schedule(state.step), jnp.float32),
        }
        new_state = TrainState(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            frozen=state.frozen,
            batch_stats=stats,
            opt_state=opt_state,
        )
        return new_state, metrics

    return jit_train_step(step, mesh)


def _global_rows(rows: np.ndarray, mesh: Mesh) -> jax.Array:
    """Host rows (the same on every process) as one global array sharded on ``data``."""
    sharding = batch_sharding(mesh)
    return jax.make_array_from_callback(rows.shape, sharding, lambda index: rows[index])


def predict_wells(
    predictor: Predictor,
    source: Any,
    geometry: Geometry,
    batch: int,
    *,
    variables: tuple[Any, ...] | None = None,
) -> list[np.ndarray]:
    """Predicted images ``[H, W, L]`` (expected intensities) of every well of ``source``.

    Each well is tiled (``data_pipelines.isl.tile_well``), tiles go through the predictor's
    sharded forward in batches of ``batch`` (rounded to the device count; the last one
    zero-padded and its padding dropped), and the output tiles are stitched back. Tiles are
    not a data source of eval batches, so the tiling loop stays here; the forward is the
    predictor's. ``variables``: newer states of its model (validation during training).
    """
    forward, mesh = predictor.forward("expected"), predictor.mesh
    states = predictor.variables if variables is None else variables
    batch = max(mesh.size, batch // mesh.size * mesh.size)
    out = []
    for index in range(len(source)):
        tiles, tiling = tile_well(source[index]["image"], geometry.eval_in, geometry.eval_out)
        pieces = []
        for start in range(0, len(tiles), batch):
            chunk = tiles[start : start + batch]
            real = len(chunk)
            if real < batch:
                chunk = np.concatenate(
                    [chunk, np.zeros((batch - real, *chunk.shape[1:]), chunk.dtype)]
                )
            pieces.append(host_rows(forward(states, _global_rows(chunk, mesh)))[:real])
        out.append(stitch_tiles(np.concatenate(pieces), tiling))
    return out


def pearson_summary(
    predictions: list[np.ndarray], source: Any, *, n_resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """``pearson/<label>`` (pixel-wise r over the split's valid pixels) and their mean
    ``pearson``."""
    sums = [
        well_sums(p, source[i]["target"], source[i]["target_mask"])
        for i, p in enumerate(predictions)
    ]
    table = pearson_by_label(
        sums, source.well_ids(), source.labels, n_resamples=n_resamples, seed=seed
    )
    values = {f"pearson/{label}": row["r"] for label, row in table.items()}
    finite = [v for v in values.values() if np.isfinite(v)]
    return {"pearson": float(np.mean(finite)) if finite else float("nan"), **values}
