"""Orbax checkpoints of a run: "latest" (to resume) and "best" (to evaluate), kept apart.

Two managers in two directories because ranking checkpoints by a metric inside one manager
can delete the newest ones (orbax issue 526). Items:

- latest/<step>/: ``model`` ({"params", "batch_stats"}), ``train`` ({"step", "opt_state"}),
  and ``data_iter`` (the Grain iterator state, one file per process) when there is one.
- best/<step>/: ``model`` and ``metrics`` (JSON: the validation metrics that made it best).

Saves are asynchronous (arrays are copied to the host before ``save`` returns, so the next
step may donate them). Restores go against an abstract state whose shardings are those of
the *current* mesh, so a checkpoint written on N devices restores onto M.

Faults (what a long run meets): a checkpoint that cannot be read (truncated or missing
files, wrong structure, unreadable metadata) is named in one logged line and the next older
one is tried; the trainer moves the damaged ones to ``checkpoints/damaged/`` once an older
one restored, so the steps are saved again. No readable checkpoint is a
:class:`CheckpointError` listing what was found, never a silent fresh start. A save that
fails (a full disk) is a :class:`CheckpointError` naming the step; Orbax writes each step
into a temporary folder renamed only when complete, so the previous step stays intact and
an unfinished save (a kill mid-write) is ignored, and removed by the next run.
"""

from __future__ import annotations

import inspect
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from engine.state import TrainState, Tree, subtree
from engine.workdir import Workdir

log = logging.getLogger(__name__)

_UNFINISHED = ".orbax-checkpoint-tmp"  # Orbax's suffix for a step still being written


class CheckpointError(ValueError):
    """A checkpoint that cannot be written, or no checkpoint that can be read; one line."""


def failure_reason(err: BaseException) -> str:
    """``Type: first line`` of the innermost cause (Orbax wraps TensorStore's precise error
    in a generic one, and either can run to pages)."""
    root, seen = err, 0
    while (root.__cause__ or root.__context__) is not None and seen < 10:
        inner = root.__cause__ or root.__context__
        if not str(inner).strip():
            break
        root, seen = inner, seen + 1
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def _quiet_abandoned_reads() -> None:
    """Silence Orbax's sibling reads that fail after the first error of a restore.

    They end as "Exception ignored in <coroutine ...>" tracebacks (dozens of lines each) when
    garbage-collected, possibly long after the restore; the failure itself is reported once,
    by the caller. Installed once per process, and only when a restore failed; every other
    unraisable exception goes to the previous hook.
    """
    previous = sys.unraisablehook
    if getattr(previous, "drops_abandoned_orbax_reads", False):
        return

    def hook(unraisable: Any) -> None:
        source = unraisable.object
        if not (inspect.iscoroutine(source) and "orbax" in source.cr_code.co_filename):
            previous(unraisable)

    hook.drops_abandoned_orbax_reads = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


class _ReportedOnce(logging.Filter):
    """Drop Orbax's background-thread error logs for a failed save or restore.

    Each failing array write logs its own page-long TensorStore error (absl, asyncio) before
    the failure reaches :class:`RunCheckpoints`, which reports it once, in one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        text = record.getMessage()
        from_orbax = "orbax" in record.pathname or "tensorstore" in text or "OCDBT" in text
        return not (
            from_orbax
            and ("raised an exception" in text or "never retrieved" in text or "failed" in text)
        )


def _install_log_filter() -> None:
    for name in ("absl", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ReportedOnce) for f in logger.filters):
            logger.addFilter(_ReportedOnce())


def unfinished_saves(directory: Path) -> list[Path]:
    """Step folders Orbax never committed (the process died while writing them)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _UNFINISHED in p.name)


def _found(directory: Path) -> str:
    """What a checkpoint folder holds, for error messages."""
    if not directory.is_dir():
        return f"{directory} does not exist"
    names = sorted(p.name for p in directory.iterdir())
    return f"{directory} holds {names}" if names else f"{directory} is empty"


def _restore_newest(
    directory: Path, steps: list[int], restore: Callable[[int], Any]
) -> tuple[Any, int, list[tuple[int, str]]]:
    """``restore(step)`` from the newest step down; each failure is one logged line.

    -> (restored, step, [(failed step, reason), ...]). Raises CheckpointError naming every
    step and why when none restores.
    """
    failures: list[tuple[int, str]] = []
    for step in sorted(steps, reverse=True):
        try:
            return restore(step), step, failures
        except Exception as err:  # noqa: BLE001 (Orbax/TensorStore raise ValueError, OSError, ...)
            _quiet_abandoned_reads()
            reason = failure_reason(err)
        failures.append((step, reason))
        log.warning(
            "checkpoint %s cannot be restored (%s)%s",
            directory / str(step),
            reason,
            "; trying an older one" if step != min(steps) else "",
        )
    tried = "; ".join(f"step {s}: {why}" for s, why in failures)
    raise CheckpointError(
        f"no checkpoint under {directory} can be restored ({tried or 'no committed step'}; "
        f"{_found(directory)}); move the workdir aside to start afresh"
    )


def _save_replicated_arrays_whole() -> None:
    """Write each replicated array from one replica instead of slicing it across replicas.

    Orbax's default on CPU/TPU ("replica-parallel") dispatches a slice per array and replica;
    on simulated CPU devices every new shape compiles one, which made a first save of
    EfficientNet-Lite0 take ~20 s. The states here are small and replicated, so one writer per
    array is the fast choice (Orbax's own default on GPU).
    """
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True
    )


def _abstract(tree: Any) -> Any:
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        tree,
    )


def _barriers(which: str) -> ocp.options.MultiprocessingOptions:
    """Barrier names of their own per manager: "latest" and "best" may both be saving step N
    at once, and Orbax's default key (``..._async_write_complete.N``) would then collide
    across processes ("Barrier ... is already ongoing")."""
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=which)


class RunCheckpoints:
    """The checkpoint managers of one workdir."""

    def __init__(
        self,
        workdir: Workdir,
        *,
        keep: int = 2,
        best_metric: str = "accuracy",
        best_mode: str = "max",
        async_save: bool = True,
    ) -> None:
        _save_replicated_arrays_whole()
        _install_log_filter()
        self.workdir = workdir
        self.best_metric = best_metric
        self.best_mode = best_mode
        self._lead = jax.process_index() == 0
        for directory in (workdir.latest_dir, workdir.best_dir):
            for path in unfinished_saves(directory):
                log.warning("removing %s: a save that never finished (the run stopped in it)", path)
        self.latest = ocp.CheckpointManager(
            workdir.latest_dir.absolute(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep,
                create=True,
                enable_async_checkpointing=async_save,
                cleanup_tmp_directories=True,
                multiprocessing_options=_barriers("latest"),
            ),
        )
        self.best = ocp.CheckpointManager(
            workdir.best_dir.absolute(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1,
                create=True,
                enable_async_checkpointing=async_save,
                cleanup_tmp_directories=True,
                multiprocessing_options=_barriers("best"),
            ),
        )
        self._saving: dict[str, int] = {}  # which -> step of a save that may still be writing
        self._reported = False  # a save failure was raised (close does not raise it again)
        self.best_value = self._read_best_value()

    # ---- saving -------------------------------------------------------------------------
    def save_latest(
        self, state: TrainState, data_iter: Any = None, *, step: int | None = None
    ) -> int:
        step = int(jax.device_get(state.step)) if step is None else step
        if step in self.latest.all_steps():
            return step
        items = {
            "model": ocp.args.StandardSave(state.model_variables()),
            "train": ocp.args.StandardSave({"step": state.step, "opt_state": state.opt_state}),
        }
        if data_iter is not None:
            items["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        self._guarded(
            "latest",
            step,
            lambda: self.latest.save(step, args=ocp.args.Composite(**items), force=True),
        )
        return step

    def is_better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.best_mode == "max" else value < self.best_value

    def save_best_if_better(self, state: TrainState, metrics: dict[str, float]) -> bool:
        """Save ``state`` as the best checkpoint when ``metrics[best_metric]`` improved."""
        value = float(metrics[self.best_metric])
        if not self.is_better(value):
            return False
        step = int(jax.device_get(state.step))
        payload = {k: float(v) for k, v in metrics.items()} | {
            "step": step,
            "metric": self.best_metric,
        }
        args = ocp.args.Composite(
            model=ocp.args.StandardSave(state.model_variables()),
            metrics=ocp.args.JsonSave(payload),
        )
        self._guarded("best", step, lambda: self.best.save(step, args=args, force=True))
        self.best_value = value
        return True

    def wait(self) -> None:
        self._guarded("latest", None, self.latest.wait_until_finished)
        self._guarded("best", None, self.best.wait_until_finished)

    def _guarded(self, which: str, step: int | None, action: Callable[[], Any]) -> Any:
        """Run a save (or a wait on one); its failure becomes one CheckpointError line.

        An asynchronous save fails in the background and surfaces at the next save or wait,
        so the step named is the one that was being written.
        """
        manager = self.latest if which == "latest" else self.best
        pending = self._saving.get(which, step)
        try:
            result = action()
        except Exception as err:
            if self._reported and step is None:  # the same failure again, from a wait or close
                log.debug("%s checkpoints: %s", which, failure_reason(err))
                return None
            self._reported = True
            self._saving.pop(which, None)
            kept = manager.all_steps()
            directory = self.workdir.latest_dir if which == "latest" else self.workdir.best_dir
            raise CheckpointError(
                f"saving checkpoint {directory / str(pending)} failed ({failure_reason(err)}); "
                + (
                    f"the newest complete one is step {max(kept)}, unharmed"
                    if kept
                    else "no earlier checkpoint exists"
                )
            ) from err
        if step is None:
            self._saving.pop(which, None)
        else:
            self._saving[which] = step
        return result

    def close(self) -> None:
        """Close both managers; a save failure already raised is not raised again."""
        self._guarded("latest", None, self.latest.close)
        self._guarded("best", None, self.best.close)

    # ---- restoring ----------------------------------------------------------------------
    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def best_step(self) -> int | None:
        return self.best.latest_step()

    def restore_latest(self, target: TrainState, data_iter: Any = None) -> TrainState:
        """The newest readable latest checkpoint, laid out (shapes, dtypes, shardings) like
        ``target``.

        Unreadable newer steps are logged (one line each) and moved to ``checkpoints/damaged/``
        once an older step restored; none readable raises CheckpointError (nothing moved).
        ``data_iter``, when given, is set to the saved position in place. Grain saves one
        position per process: when the process count changed since the save, the data order
        cannot be continued exactly and the iterator restarts (logged); the state still restores.
        """
        steps = list(self.latest.all_steps())
        if not steps:
            raise FileNotFoundError(f"no checkpoint under {self.workdir.latest_dir}")

        def restore(step: int) -> Any:
            return self.latest.restore(
                step, args=ocp.args.Composite(**self._latest_items(step, target, data_iter))
            )

        restored, step, failures = _restore_newest(self.workdir.latest_dir, steps, restore)
        if failures:
            self._set_aside("latest", [s for s, _ in failures])
            log.warning("resuming from step %d, the newest checkpoint that restores", step)
        variables = restored["model"]
        return TrainState(
            step=restored["train"]["step"],
            params=subtree(variables["params"], target.params),
            frozen=subtree(variables["params"], target.frozen),
            batch_stats=variables["batch_stats"],
            opt_state=restored["train"]["opt_state"],
        )

    def _latest_items(self, step: int, target: TrainState, data_iter: Any) -> dict[str, Any]:
        items = {
            "model": ocp.args.StandardRestore(_abstract(target.model_variables())),
            "train": ocp.args.StandardRestore(
                _abstract({"step": target.step, "opt_state": target.opt_state})
            ),
        }
        if data_iter is not None:
            saved = self.workdir.latest_dir / str(step) / "data_iter"
            mine = saved / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
            if mine.is_file():
                items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
            else:
                log.warning(
                    "%s: the data iterator restarts (resumed data order differs from an "
                    "uninterrupted run)",
                    f"{saved} was saved by another number of processes"
                    if saved.is_dir()
                    else f"{saved.parent} holds no data iterator position",
                )
        return items

    def _set_aside(self, which: str, steps: list[int]) -> None:
        """Move damaged steps to ``checkpoints/damaged/`` so those steps are saved again."""
        directory = self.workdir.latest_dir if which == "latest" else self.workdir.best_dir
        if self._lead:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for step in steps:
                source = directory / str(step)
                target = self.workdir.root / "checkpoints" / "damaged" / f"{which}-{step}-{stamp}"
                target.parent.mkdir(parents=True, exist_ok=True)
                source.rename(target)
                log.warning("moved the damaged checkpoint %s to %s", source, target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("checkpoints: damaged steps set aside")
        (self.latest if which == "latest" else self.best).reload()

    def _read_best_value(self) -> float | None:
        step = self.best.latest_step()
        if step is None:
            return None
        try:
            metrics = self.best.restore(
                step, args=ocp.args.Composite(metrics=ocp.args.JsonRestore())
            )["metrics"]
            float(metrics[self.best_metric] if metrics.get("metric") == self.best_metric else 0)
        except Exception as err:  # noqa: BLE001 (any unreadable best is set aside, not fatal)
            log.warning(
                "best checkpoint %s cannot be read (%s): the ranking starts afresh",
                self.workdir.best_dir / str(step),
                failure_reason(err),
            )
            self._set_aside("best", [step])
            return None
        if metrics.get("metric") != self.best_metric:
            log.warning(
                "best checkpoint was chosen by %r, this run ranks by %r: "
                "starting the ranking afresh",
                metrics.get("metric"),
                self.best_metric,
            )
            return None
        return float(metrics[self.best_metric])


def restore_model_variables(workdir: Workdir, which: str, target: Tree) -> tuple[Tree, int, str]:
    """The "model" item of the newest readable ``which`` ("best" | "latest") checkpoint.

    Unreadable steps are logged (one line each) and older ones tried; "best" falls back to
    the latest checkpoints (logged) when a run never evaluated or its best cannot be read.
    Nothing on disk is changed (evaluation may run beside training).
    -> (variables, step, which it came from).
    """
    if which not in ("best", "latest"):
        raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    order = ["best", "latest"] if which == "best" else ["latest"]
    problems = []
    for source in order:
        steps = workdir.checkpoint_steps(source)
        if not steps:
            continue
        if source != which:
            log.warning(
                "%s has no readable best checkpoint%s: using the latest checkpoints",
                workdir.root,
                "" if problems else " (no validation ran)",
            )
        directory = workdir.best_dir if source == "best" else workdir.latest_dir
        args = ocp.args.Composite(model=ocp.args.StandardRestore(_abstract(target)))
        try:
            with ocp.CheckpointManager(
                directory.absolute(), options=ocp.CheckpointManagerOptions(read_only=True)
            ) as manager:
                committed = list(manager.all_steps())
                restored, step, _ = _restore_newest(
                    directory, committed, lambda s, m=manager, a=args: m.restore(s, args=a)
                )
        except CheckpointError as err:
            problems.append(str(err))
            continue
        return restored["model"], step, source
    if problems:
        raise CheckpointError("; ".join(problems))
    raise FileNotFoundError(
        f"no checkpoint under {workdir.root / 'checkpoints'} (looked for {which})"
    )
