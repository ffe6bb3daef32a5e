"""A whole training run from a :class:`TrainConfig`: data, model, state, loop, hooks.

The final test-split report (``config.final_split``) is launch.train's: it runs
launch.evaluate on the best checkpoint, the one evaluation path with the paper's metrics.

Restore order (STYLE.md lesson 12): the workdir's own latest checkpoint (a resume) ->
``--init_from`` (another run's best weights, e.g. fine-tuning after a linear probe) ->
``--pretrained`` weights -> random initialisation. A resume must match the run it continues
(``engine.resume``: settings that change a step's result); step counts may grow.
One process at a time trains in a workdir (``engine.workdir_lock``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from engine.checkpoints import RunCheckpoints
from engine.config import TrainConfig
from engine.evaluation.validation import classification_metrics, gather_outputs
from engine.hooks import CheckpointHook, LogHook, ValidationHook
from engine.inference import load_run
from engine.linear_probe import (
    FeatureBatches,
    cached_features,
    classifier_graphdef,
    make_probe_evaluator,
    make_probe_step,
    solve_probe,
    with_classifier,
)
from engine.loop import train_loop
from engine.losses import balanced_class_weights
from engine.mesh import place_replicated
from engine.optim import make_optimizer
from engine.preemption import StopRequest
from engine.progress import ProgressBar
from engine.resume import check_resumable
from engine.run_data import RunData, open_run_data
from engine.run_log import RunLog
from engine.state import build_model, init_train_state, resolve_pretrained
from engine.steps import compute_dtype, make_forward, make_train_step
from engine.tasks import dense_task
from engine.workdir import Workdir
from engine.workdir_lock import WorkdirLock
from models.metadata import WeightMetadata

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunSummary:
    """What a finished (or stopped) run did; also printed by ``launch.train``."""

    workdir: Path
    step: int
    total_steps: int
    stopped: str | None  # None: every step ran
    resumed_from: int | None
    best_step: int | None
    validation: list[dict[str, Any]]


def plan_steps(config: TrainConfig, examples: int, mesh: Mesh) -> tuple[int, int, int]:
    """-> (global batch size, total steps, steps per epoch).

    A linear probe's batch is capped at the (device-divisible) training set size: the paper's
    1,000 is more than small data sets hold.
    """
    batch = config.batch_size
    if solved_probe(config):  # one full-batch solve, checkpointed as step 1
        return max(mesh.size, min(batch, examples) // mesh.size * mesh.size), 1, 1
    if config.transfer == "linear_probe" and batch > examples:
        batch = max(mesh.size, examples // mesh.size * mesh.size)
    per_epoch = max(examples // batch, 1)
    total = (
        config.steps if config.steps is not None else math.ceil((config.epochs or 1.0) * per_epoch)
    )
    return batch, total, per_epoch


def solved_probe(config: TrainConfig) -> bool:
    """True when the run is a linear probe solved by L-BFGS with cross-validated L2."""
    return config.transfer == "linear_probe" and config.probe_solver == "lbfgs"


def resolved_config(
    config: TrainConfig, data: RunData, batch: int, total_steps: int
) -> dict[str, Any]:
    """config.json: the TrainConfig plus what the data and the weights decided."""
    return config.to_dict() | {
        "num_classes": len(data.class_names),
        "class_names": list(data.class_names),
        "metadata": json.loads(data.metadata.to_json()),
        "global_batch_size": batch,
        "total_steps": total_steps,
        "train_examples": len(data.train),
        "val_examples": None if data.val is None else len(data.val),
    }


def _image_evaluator(
    forward: Any, model_def: Any, source: Any, eval_cfg: Any, batch: int, mesh: Mesh, workers: int
):
    from data_pipelines.pipeline import make_eval_iterator

    labels = np.asarray([r.label for r in source.records], np.int32)

    def evaluate(state: Any) -> dict[str, float]:
        batches = make_eval_iterator(
            source, eval_cfg, global_batch_size=batch, mesh=mesh, workers=workers
        )
        states = (state.params, state.frozen, state.batch_stats, model_def.rest)
        probs, index = gather_outputs(forward, states, batches)
        return classification_metrics(probs, labels[index])

    return evaluate


def init_from_run(model: Any, config: TrainConfig, class_names: tuple[str, ...]) -> None:
    """Overwrite ``model``'s weights with the best checkpoint of ``config.init_from``."""
    from flax import nnx

    source = load_run(config.init_from, "best")
    if source.config.model != config.model or source.class_names != tuple(class_names):
        raise ValueError(
            f"--init_from={config.init_from} holds {source.config.model} for classes {source.class_names}; "
            f"this run is {config.model} for {tuple(class_names)}"
        )
    nnx.update(model, nnx.state(source.model, nnx.Any(nnx.Param, nnx.BatchStat)))
    log.info(
        "initialised from %s (%s checkpoint, step %d)",
        config.init_from,
        source.checkpoint,
        source.step,
    )


@dataclasses.dataclass
class StepSetup:
    """What the transfer mode decides: the step, where its batches come from, validation."""

    step_fn: Any
    batches: Any  # iterator of global batches
    data_iter: Any  # the Grain iterator to checkpoint (None for cached features)
    evaluate: Any  # state -> validation metrics, or None without a validation split


def _probe_setup(
    config,
    data,
    model_def,
    state,
    tx,
    schedule,
    head_graphdef,
    weights,
    batch,
    mesh,
    workdir,
    run_log,
) -> StepSetup:
    """Linear probe: features once, then the classifier on the cache."""
    classifier_path = model_def.classifier_path
    (train_x, train_y, _), *val = _split_features(
        config, data, model_def, state, mesh, workdir, run_log
    )
    batches = FeatureBatches(
        train_x,
        train_y,
        global_batch_size=batch,
        mesh=mesh,
        seed=config.seed,
        class_balanced=config.class_balanced_sampling,
    )
    step_fn = make_probe_step(head_graphdef, classifier_path, tx, schedule, config, mesh, weights)
    evaluate = None
    if val:
        ((val_x, val_y, _),) = val
        evaluate = make_probe_evaluator(head_graphdef, classifier_path, val_x, val_y, mesh)
    return StepSetup(step_fn, batches, None, evaluate)


def _split_features(config, data, model_def, state, mesh, workdir, run_log) -> list[Any]:
    """Cached (features, labels, records) of the train split, then of val when there is one."""
    sources = [data.train] + ([] if data.val is None else [data.val])
    return [
        cached_features(
            source=source,
            model_def=model_def,
            state=state,
            config=config,
            metadata=data.metadata,
            mesh=mesh,
            eval_cfg=data.eval_cfg,
            workdir=workdir,
            log=run_log,
        )
        for source in sources
    ]


def _solved_probe_run(
    config: TrainConfig,
    data: RunData,
    model_def: Any,
    state: Any,
    mesh: Mesh,
    workdir: Workdir,
    run_log: RunLog,
    checkpoints: RunCheckpoints,
    progress: ProgressBar,
) -> RunSummary:
    """The L-BFGS linear probe: features once, cross-validation, one fit, one checkpoint.

    The cross-validated estimate (nested, patient-grouped, out-of-fold predictions) is
    written as a full report under ``<workdir>/cv/``; it also ranks the "best" checkpoint.
    A workdir that already holds the fitted step has nothing left to do.
    """
    done = checkpoints.latest_step()
    if done is not None:
        progress.message(f"{workdir.root} already holds the fitted probe (step {done})")
        return RunSummary(workdir.root, done, 1, None, done, checkpoints.best_step(), [])
    parts = _split_features(config, data, model_def, state, mesh, workdir, run_log)
    solved = solve_probe(parts, config, len(data.class_names), run_log)
    params = with_classifier(state.params, model_def.classifier_path, solved.classifier)
    state = state.replace(params=place_replicated(params, mesh), step=state.step + 1)
    cv_metrics = classification_metrics(solved.cv.oof_probabilities, solved.labels)
    checkpoints.save_latest(state, None, step=1)
    checkpoints.save_best_if_better(state, cv_metrics)
    checkpoints.wait()
    if jax.process_index() == 0:
        write_cv_report(workdir.root / "cv", solved, data.class_names, config)
    validation = [cv_metrics | {"step": 1, "is_best": True, "source": "nested_cv"}]
    run_log.event("validation", step=1, **cv_metrics, source="nested_cv")
    return RunSummary(workdir.root, 1, 1, None, None, checkpoints.best_step(), validation)


def write_cv_report(out: Path, solved: Any, class_names: tuple[str, ...], config: TrainConfig):
    """The paper's metrics on the nested out-of-fold predictions, as launch.evaluate writes them."""
    from engine.evaluation import metrics
    from engine.reports import classification as report

    patients = [r.patient for r in solved.records]
    evaluation = metrics.evaluate(solved.cv.oof_probabilities, solved.labels, patients, class_names)
    provenance = {
        "workdir": str(config.workdir),
        "model": config.model,
        "pretrained": config.pretrained,
        "transfer": config.transfer,
        "dataset": config.dataset,
        "split": "train (nested patient-grouped cross-validation, out-of-fold predictions)",
        "classes": list(class_names),
        "images": len(solved.records),
        "patients": len(set(patients)),
        "folds": len(np.unique(solved.cv.folds)),
        "balanced_weighting": solved.balanced,
        "l2": solved.l2,
        "l2_selection": config.probe_select,
        "nested_cv_l2": solved.cv.outer_l2.tolist(),
        "l2_table": solved.cv.table(),
    }
    rows = report.prediction_rows(
        [r.path for r in solved.records],
        patients,
        solved.labels,
        solved.cv.oof_probabilities,
        class_names,
    )
    return report.write_report(out, evaluation, provenance, rows)


def _image_setup(config, data, model_def, tx, schedule, weights, batch, mesh) -> StepSetup:
    """Fine-tuning / scratch: the full train step on image batches from the Grain pipeline."""
    from data_pipelines.pipeline import make_train_iterator

    data_iter = make_train_iterator(
        data.train,
        data.train_cfg,
        global_batch_size=batch,
        mesh=mesh,
        seed=config.seed,
        workers=config.workers,
        class_balanced=config.class_balanced_sampling,
    )
    step_fn = make_train_step(model_def, tx, schedule, config, data.metadata, mesh, weights)
    evaluate = None
    if data.val is not None:
        forward = make_forward(
            model_def.graphdef_eval, data.metadata, mesh, dtype=compute_dtype(config.dtype)
        )
        evaluate = _image_evaluator(
            forward,
            model_def,
            data.val,
            data.eval_cfg,
            config.eval_batch_size or batch,
            mesh,
            config.workers,
        )
    return StepSetup(step_fn, data_iter, data_iter, evaluate)


def train(config: TrainConfig, mesh: Mesh, *, stop: StopRequest | None = None) -> RunSummary:
    """Train (or resume) the run ``config`` describes on ``mesh``; see the module docstring."""
    config = resolve_pretrained(config)
    task = dense_task(config)  # None: classification, this module's own path
    workdir = Workdir(config.workdir)
    lead = jax.process_index() == 0
    stop = stop or StopRequest()
    # A resume restores every weight from the workdir's checkpoint: the pretrained file is
    # neither needed nor read (it may have moved since), its metadata comes from config.json.
    saved_metadata = None
    if workdir.checkpoint_steps("latest") and workdir.config_path.is_file():
        saved = workdir.read_config().get("metadata")
        saved_metadata = None if saved is None else WeightMetadata.from_json(json.dumps(saved))
    data = (task.open_data if task else open_run_data)(config, saved_metadata)
    examples = task.examples(data) if task else len(data.train)
    batch, total_steps, per_epoch = plan_steps(config, examples, mesh)
    if batch % mesh.size:
        raise ValueError(
            f"batch size {batch} does not divide over the {mesh.size} devices of the mesh"
        )
    resolved = resolved_config(config, data, batch, total_steps)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(WorkdirLock(workdir.root, enabled=lead))
        checkpoints = RunCheckpoints(
            workdir,
            keep=config.keep_checkpoints,
            best_metric=config.best_metric,
            best_mode=config.best_mode,
        )
        cleanup.callback(checkpoints.close)
        cleanup.callback(checkpoints.wait)  # callbacks run last-in first-out: wait, then close
        resuming = checkpoints.latest_step() is not None
        if resuming:
            check_resumable(workdir, resolved)
        if lead:
            workdir.write_config(resolved)
            workdir.write_versions({"mesh_devices": mesh.size})
        run_log = RunLog(workdir, enabled=lead)
        cleanup.callback(run_log.close)
        progress = ProgressBar(total_steps, enabled=lead and config.progress)

        if resuming:  # random init of the same shapes; the checkpoint overwrites every weight
            kwargs = {**data.metadata.model_kwargs, **config.model_kwargs}
            model = build_model(
                config.replace(model_kwargs=kwargs), len(data.class_names), pretrained=False
            )
        else:
            model = build_model(config, len(data.class_names))
        if config.init_from and not resuming:
            (task.init_from if task else init_from_run)(model, config, data.class_names)
        classifier_path = data.metadata.classifier_paths[0]
        tx, schedule = make_optimizer(config, total_steps, classifier_path)
        head_graphdef = classifier_graphdef(model, classifier_path)
        model_def, state = init_train_state(model, config, data.metadata, tx, mesh)
        del model
        weights = None
        if not task:
            counts = np.bincount(
                [r.label for r in data.train.records], minlength=len(data.class_names)
            )
            balanced = config.balanced_weighting(counts.tolist())
            weights = balanced_class_weights(counts) if balanced else None
            if config.class_weighting == "auto":
                log.info(
                    "class weighting: %s (training classes %s)",
                    "balanced" if balanced else "none",
                    dict(zip(data.class_names, counts.tolist(), strict=True)),
                )
        if solved_probe(config) and not task:
            return _solved_probe_run(
                config, data, model_def, state, mesh, workdir, run_log, checkpoints, progress
            )
        if task:
            setup = task.setup(config, data, model_def, tx, schedule, batch, mesh)
        elif config.transfer == "linear_probe":
            setup = _probe_setup(
                config,
                data,
                model_def,
                state,
                tx,
                schedule,
                head_graphdef,
                weights,
                batch,
                mesh,
                workdir,
                run_log,
            )
        else:
            setup = _image_setup(config, data, model_def, tx, schedule, weights, batch, mesh)

        resumed_from = None
        if resuming:
            state = checkpoints.restore_latest(state, setup.data_iter)
            resumed_from = int(jax.device_get(state.step))
            if isinstance(setup.batches, FeatureBatches):
                setup.batches.step = resumed_from
            run_log.event("resumed", step=resumed_from)
            progress.message(f"resumed {workdir.root} at step {resumed_from}")
        progress.start_step = resumed_from or 0

        eval_every = config.eval_every or per_epoch
        hooks: list[Any] = [LogHook(config.log_every, run_log)]
        validation = None
        if setup.evaluate is not None:
            validation = ValidationHook(
                eval_every, setup.evaluate, checkpoints, run_log, progress if lead else None
            )
            hooks.append(validation)
        hooks.append(
            CheckpointHook(config.checkpoint_every or eval_every, checkpoints, setup.data_iter)
        )

        def save_on_stop(step: int, final_state: Any) -> None:
            checkpoints.save_latest(final_state, setup.data_iter, step=step)
            checkpoints.wait()
            run_log.event("stopped", step=step, reason=stop.reason)
            progress.message(
                f"stopped at step {step}: checkpoint saved in {workdir.latest_dir}; "
                "run the same command again to resume"
            )

        def last_checkpoint() -> str | None:
            step = checkpoints.latest_step()
            return None if step is None else str(workdir.latest_dir / str(step))

        with stop.installed():
            result = train_loop(
                state,
                setup.step_fn,
                setup.batches,
                total_steps=total_steps,
                hooks=hooks,
                flush_every=config.log_every,
                stop=stop,
                on_stop=save_on_stop,
                last_checkpoint=last_checkpoint,
                progress=progress,
            )
        checkpoints.wait()
        progress.close()
        return RunSummary(
            workdir.root,
            result.step,
            total_steps,
            result.stopped,
            resumed_from,
            checkpoints.best_step(),
            validation.history if validation else [],
        )
