"""A whole training run from a :class:`TrainConfig`: data, model, state, loop, hooks.

:func:`train` is two steps: :func:`build_run` decides everything a run needs before its
first step (a :class:`BuiltRun`: data, step plan, locked workdir, checkpoints, logs, model,
state) and :func:`run_steps` restores a resume and runs the loop (the L-BFGS probe instead
fits once, :func:`_solved_probe_run`). Every batch iterator, the linear probe's included,
is checkpointed through Grain's ``get_state``/``set_state``, so a resume continues it exactly.

The final test-split report (``config.final_split``) is launch.train's: it runs
:func:`engine.evaluation.evaluate.evaluate_run` on the best checkpoint, the one evaluation
path with the paper's metrics.

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
import optax
from flax import nnx
from jax.sharding import Mesh

from data_pipelines.datasets import declared_tasks
from data_pipelines.pipeline import make_eval_iterator, make_train_iterator
from engine.checkpoints import RunCheckpoints
from engine.config import TrainConfig
from engine.evaluation import metrics
from engine.evaluation.validation import classification_metrics
from engine.hooks import CheckpointHook, LogHook, ValidationHook
from engine.inference import load_run
from engine.linear_probe import (
    FeatureBatches,
    FeatureExtractor,
    SplitFeatures,
    cached_features,
    classifier_graphdef,
    make_probe_evaluator,
    make_probe_step,
    solve_probe,
    with_classifier,
)
from engine.loop import Hook, StepSetup, train_loop
from engine.losses import balanced_class_weights
from engine.mesh import place_replicated
from engine.optim import make_optimizer
from engine.predictor import Predictor, eval_states
from engine.preemption import StopRequest
from engine.progress import ProgressBar
from engine.reports import classification as report
from engine.reports.predictions import prediction_rows
from engine.resume import check_resumable
from engine.run_data import RunData, open_run_data
from engine.run_log import RunLog
from engine.run_record import RunRecord
from engine.state import ModelDef, TrainState, build_model, init_train_state, resolve_pretrained
from engine.steps import compute_dtype, make_train_step
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
    """config.json: the TrainConfig plus what the data and the weights decided (the
    :class:`~engine.run_record.RunRecord` that evaluation, prediction and occlusion read)."""
    record = RunRecord(
        config,
        tuple(data.class_names),
        data.metadata,
        global_batch_size=batch,
        total_steps=total_steps,
        train_examples=len(data.train),
        val_examples=None if data.val is None else len(data.val),
    )
    return record.to_dict()


def _image_evaluator(
    predictor: Predictor,
    model_def: ModelDef,
    source: Any,
    eval_cfg: Any,
    batch: int,
    mesh: Mesh,
    workers: int,
):
    """Validation metrics of the current train state, through the run's one ``predictor``."""
    labels = np.asarray([r.label for r in source.records], np.int32)

    def evaluate(state: Any) -> dict[str, float]:
        batches = make_eval_iterator(
            source, eval_cfg, global_batch_size=batch, mesh=mesh, workers=workers
        )
        probs, index = predictor.predict(batches, variables=eval_states(model_def, state))
        return classification_metrics(probs, labels[index])

    return evaluate


def init_from_run(model: Any, config: TrainConfig, class_names: tuple[str, ...]) -> None:
    """Overwrite ``model``'s weights with the best checkpoint of ``config.init_from``."""
    source = load_run(config.init_from, "best")
    if source.config.model != config.model or source.class_names != tuple(class_names):
        raise ValueError(
            f"--init_from={config.init_from} holds {source.config.model} for classes "
            f"{source.class_names}; "
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
class BuiltRun:
    """A run ready for its first step: what the config, the data and the workdir decided.

    :func:`build_run` makes it (nothing trained yet); :func:`run_steps` or, for the L-BFGS
    probe, :func:`_solved_probe_run` runs it.
    """

    config: TrainConfig  # with ``pretrained`` resolved
    task: Any  # None: classification; else the task's hooks (engine.dense_task.DenseTask)
    mesh: Mesh
    workdir: Workdir
    data: RunData
    batch: int  # global batch size
    total_steps: int
    per_epoch: int  # steps per epoch (the default validation interval)
    resuming: bool  # the workdir holds a latest checkpoint: run_steps restores it
    checkpoints: RunCheckpoints
    run_log: RunLog
    progress: ProgressBar
    model_def: ModelDef
    state: TrainState  # the initial state; a resume restores over it
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    head_graphdef: nnx.GraphDef  # the classifier's static half (linear probe)
    class_weights: np.ndarray | None  # per-class loss weights; None: unweighted

    @property
    def lead(self) -> bool:
        return jax.process_index() == 0


def _saved_metadata(workdir: Workdir) -> WeightMetadata | None:
    """The run's own weight metadata (config.json) when resuming, else None.

    A resume restores every weight from the workdir's checkpoint: the pretrained file is
    neither needed nor read (it may have moved since).
    """
    if not (workdir.checkpoint_steps("latest") and workdir.config_path.is_file()):
        return None
    saved = workdir.read_config().get("metadata")
    return None if saved is None else WeightMetadata.from_json(json.dumps(saved))


def _initial_model(config: TrainConfig, task: Any, data: RunData, resuming: bool) -> nnx.Module:
    """The network before training; restore order in the module docstring."""
    if resuming:  # random init of the same shapes; the checkpoint overwrites every weight
        kwargs = {**data.metadata.model_kwargs, **config.model_kwargs}
        return build_model(
            config.replace(model_kwargs=kwargs), len(data.class_names), pretrained=False
        )
    model = build_model(config, len(data.class_names))
    if config.init_from:
        (task.init_from if task else init_from_run)(model, config, data.class_names)
    return model


def _class_weights(config: TrainConfig, data: RunData) -> np.ndarray | None:
    """Balanced per-class loss weights when ``config.class_weighting`` asks for them."""
    counts = np.bincount([r.label for r in data.train.records], minlength=len(data.class_names))
    balanced = config.balanced_weighting(counts.tolist())
    if config.class_weighting == "auto":
        log.info(
            "class weighting: %s (training classes %s)",
            "balanced" if balanced else "none",
            dict(zip(data.class_names, counts.tolist(), strict=True)),
        )
    return balanced_class_weights(counts) if balanced else None


def build_run(config: TrainConfig, mesh: Mesh, cleanup: contextlib.ExitStack) -> BuiltRun:
    """Data, step plan, workdir (locked), checkpoints, logs, model and initial state.

    What must be released when the run ends (the lock, the checkpoint managers, the log)
    is registered on ``cleanup``. A resume is checked against the run it continues here.
    """
    config = resolve_pretrained(config)
    task = dense_task(config)  # None: classification, this module's own path
    workdir = Workdir(config.workdir)
    lead = jax.process_index() == 0
    data = (task.open_data if task else open_run_data)(config, _saved_metadata(workdir))
    examples = task.examples(data) if task else len(data.train)
    batch, total_steps, per_epoch = plan_steps(config, examples, mesh)
    if batch % mesh.size:
        raise ValueError(
            f"batch size {batch} does not divide over the {mesh.size} devices of the mesh"
        )
    resolved = resolved_config(config, data, batch, total_steps)
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
    model = _initial_model(config, task, data, resuming)
    classifier_path = data.metadata.classifier_paths[0]
    tx, schedule = make_optimizer(config, total_steps, classifier_path)
    head_graphdef = classifier_graphdef(model, classifier_path)
    model_def, state = init_train_state(model, config, data.metadata, tx, mesh)
    return BuiltRun(
        config=config,
        task=task,
        mesh=mesh,
        workdir=workdir,
        data=data,
        batch=batch,
        total_steps=total_steps,
        per_epoch=per_epoch,
        resuming=resuming,
        checkpoints=checkpoints,
        run_log=run_log,
        progress=progress,
        model_def=model_def,
        state=state,
        tx=tx,
        schedule=schedule,
        head_graphdef=head_graphdef,
        class_weights=None if task else _class_weights(config, data),
    )


def _run_predictor(run: BuiltRun) -> Predictor:
    """The run's model in eval mode on its mesh, in the run's compute dtype."""
    return Predictor.from_train_state(
        run.model_def,
        run.state,
        run.data.metadata,
        run.mesh,
        dtype=compute_dtype(run.config.dtype),
    )


def _feature_extractor(run: BuiltRun) -> FeatureExtractor:
    """The run's frozen backbone as the linear probe's feature source."""
    return FeatureExtractor(
        predictor=_run_predictor(run),
        config=run.config,
        eval_cfg=run.data.eval_cfg,
        workdir=run.workdir,
        log=run.run_log,
    )


def _split_features(run: BuiltRun) -> list[SplitFeatures]:
    """Cached features of the train split, then of val when there is one."""
    extractor = _feature_extractor(run)
    sources = [run.data.train] + ([] if run.data.val is None else [run.data.val])
    return [cached_features(extractor, source) for source in sources]


def _probe_setup(run: BuiltRun) -> StepSetup:
    """Linear probe: features once, then the classifier on the cache."""
    train_split, *val = _split_features(run)
    classifier_path = run.model_def.classifier_path
    batches = FeatureBatches(
        train_split.features,
        train_split.labels,
        global_batch_size=run.batch,
        mesh=run.mesh,
        seed=run.config.seed,
        class_balanced=run.config.class_balanced_sampling,
    )
    step_fn = make_probe_step(
        run.head_graphdef,
        classifier_path,
        run.tx,
        run.schedule,
        run.config,
        run.mesh,
        run.class_weights,
    )
    evaluate = None
    if val:
        (val_split,) = val
        evaluate = make_probe_evaluator(
            run.head_graphdef, classifier_path, val_split.features, val_split.labels, run.mesh
        )
    return StepSetup(step_fn, batches, evaluate)


def _image_setup(run: BuiltRun) -> StepSetup:
    """Fine-tuning / scratch: the full train step on image batches from the Grain pipeline."""
    config, data, mesh = run.config, run.data, run.mesh
    data_iter = make_train_iterator(
        data.train,
        data.train_cfg,
        global_batch_size=run.batch,
        mesh=mesh,
        seed=config.seed,
        workers=config.workers,
        class_balanced=config.class_balanced_sampling,
    )
    step_fn = make_train_step(
        run.model_def, run.tx, run.schedule, config, data.metadata, mesh, run.class_weights
    )
    evaluate = None
    if data.val is not None:
        evaluate = _image_evaluator(
            _run_predictor(run),
            run.model_def,
            data.val,
            data.eval_cfg,
            config.eval_batch_size or run.batch,
            mesh,
            config.workers,
        )
    return StepSetup(step_fn, data_iter, evaluate)


def step_setup(run: BuiltRun) -> StepSetup:
    """The step, batches and validation of the run's task and transfer mode."""
    if run.task:
        return run.task.setup(run)
    if run.config.transfer == "linear_probe":
        return _probe_setup(run)
    return _image_setup(run)


def _solved_probe_run(run: BuiltRun) -> RunSummary:
    """The L-BFGS linear probe: features once, cross-validation, one fit, one checkpoint.

    The cross-validated estimate (nested, patient-grouped, out-of-fold predictions) is
    written as a full report under ``<workdir>/cv/``; it also ranks the "best" checkpoint.
    A workdir that already holds the fitted step has nothing left to do.
    """
    config, checkpoints, workdir = run.config, run.checkpoints, run.workdir
    done = checkpoints.latest_step()
    if done is not None:
        run.progress.message(f"{workdir.root} already holds the fitted probe (step {done})")
        return RunSummary(workdir.root, done, 1, None, done, checkpoints.best_step(), [])
    parts = _split_features(run)
    solved = solve_probe(parts, config, len(run.data.class_names), run.run_log)
    params = with_classifier(run.state.params, run.model_def.classifier_path, solved.classifier)
    state = run.state.replace(params=place_replicated(params, run.mesh), step=run.state.step + 1)
    cv_metrics = classification_metrics(solved.cv.oof_probabilities, solved.labels)
    checkpoints.save_latest(state, None, step=1)
    checkpoints.save_best_if_better(state, cv_metrics)
    checkpoints.wait()
    if run.lead:
        write_cv_report(workdir.root / "cv", solved, run.data.class_names, config)
    validation = [cv_metrics | {"step": 1, "is_best": True, "source": "nested_cv"}]
    run.run_log.event("validation", step=1, **cv_metrics, source="nested_cv")
    return RunSummary(workdir.root, 1, 1, None, None, checkpoints.best_step(), validation)


def write_cv_report(out: Path, solved: Any, class_names: tuple[str, ...], config: TrainConfig):
    """The paper's metrics on the nested out-of-fold predictions, as launch.evaluate writes them."""
    patients = [r.patient for r in solved.records]
    evaluation = metrics.evaluate(
        solved.cv.oof_probabilities,
        solved.labels,
        patients,
        class_names,
        tasks=declared_tasks(config.dataset),
    )
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
    rows = prediction_rows(
        [r.path for r in solved.records],
        patients,
        solved.labels,
        solved.cv.oof_probabilities,
        class_names,
    )
    return report.write_report(out, evaluation, provenance, rows)


def run_steps(run: BuiltRun, stop: StopRequest) -> RunSummary:
    """Restore a resumed run, then step to ``run.total_steps`` with the periodic hooks."""
    config, checkpoints, workdir, progress = run.config, run.checkpoints, run.workdir, run.progress
    setup = step_setup(run)
    state, resumed_from = run.state, None
    if run.resuming:
        state = checkpoints.restore_latest(state, setup.batches)
        resumed_from = int(jax.device_get(state.step))
        run.run_log.event("resumed", step=resumed_from)
        progress.message(f"resumed {workdir.root} at step {resumed_from}")
    progress.start_step = resumed_from or 0

    eval_every = config.eval_every or run.per_epoch
    hooks: list[Hook] = [LogHook(config.log_every, run.run_log)]
    validation = None
    if setup.evaluate is not None:
        validation = ValidationHook(
            eval_every, setup.evaluate, checkpoints, run.run_log, progress if run.lead else None
        )
        hooks.append(validation)
    hooks.append(CheckpointHook(config.checkpoint_every or eval_every, checkpoints, setup.batches))

    def save_on_stop(step: int, final_state: TrainState) -> None:
        checkpoints.save_latest(final_state, setup.batches, step=step)
        checkpoints.wait()
        run.run_log.event("stopped", step=step, reason=stop.reason)
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
            total_steps=run.total_steps,
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
        run.total_steps,
        result.stopped,
        resumed_from,
        checkpoints.best_step(),
        validation.history if validation else [],
    )


def train(config: TrainConfig, mesh: Mesh, *, stop: StopRequest | None = None) -> RunSummary:
    """Train (or resume) the run ``config`` describes on ``mesh``; see the module docstring."""
    with contextlib.ExitStack() as cleanup:
        run = build_run(config, mesh, cleanup)
        if solved_probe(run.config) and not run.task:
            return _solved_probe_run(run)
        return run_steps(run, stop or StopRequest())
