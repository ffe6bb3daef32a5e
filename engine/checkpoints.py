"""Orbax checkpoints of a run: "latest" (to resume) and "best" (to evaluate), kept apart.

Two managers in two directories because ranking checkpoints by a metric inside one manager
can delete the newest ones (orbax issue 526). Items:

- latest/<step>/: ``model`` ({"params", "batch_stats"}), ``train`` ({"step", "opt_state"}),
  and ``data_iter`` (the Grain iterator state, one file per process) when there is one.
- best/<step>/: ``model`` and ``metrics`` (JSON: the validation metrics that made it best).

Saves are asynchronous (arrays are copied to the host before ``save`` returns, so the next
step may donate them). Restores go against an abstract state whose shardings are those of
the *current* mesh, so a checkpoint written on N devices restores onto M.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import jax
import orbax.checkpoint as ocp

from engine.state import TrainState, Tree, subtree
from engine.workdir import Workdir

log = logging.getLogger(__name__)


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
        self.workdir = workdir
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.latest = ocp.CheckpointManager(
            workdir.latest_dir.absolute(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save
            ),
        )
        self.best = ocp.CheckpointManager(
            workdir.best_dir.absolute(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, enable_async_checkpointing=async_save
            ),
        )
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
            import grain

            items["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        self.latest.save(step, args=ocp.args.Composite(**items), force=True)
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
        self.best.save(
            step,
            args=ocp.args.Composite(
                model=ocp.args.StandardSave(state.model_variables()),
                metrics=ocp.args.JsonSave(payload),
            ),
            force=True,
        )
        self.best_value = value
        return True

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()

    # ---- restoring ----------------------------------------------------------------------
    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def best_step(self) -> int | None:
        return self.best.latest_step()

    def restore_latest(self, target: TrainState, data_iter: Any = None) -> TrainState:
        """The latest checkpoint, laid out (shapes, dtypes, shardings) like ``target``.

        ``data_iter``, when given, is set to the saved position in place. Grain saves one
        position per process: when the process count changed since the save, the data order
        cannot be continued exactly and the iterator restarts (logged); the state still restores.
        """
        step = self.latest.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.workdir.latest_dir}")
        items = {
            "model": ocp.args.StandardRestore(_abstract(target.model_variables())),
            "train": ocp.args.StandardRestore(
                _abstract({"step": target.step, "opt_state": target.opt_state})
            ),
        }
        if data_iter is not None:
            import grain

            saved = self.workdir.latest_dir / str(step) / "data_iter"
            mine = saved / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
            if mine.is_file():
                items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
            elif saved.is_dir():
                log.warning(
                    "%s was saved by another number of processes: the data iterator restarts "
                    "(resumed data order differs from an uninterrupted run)",
                    saved,
                )
        restored = self.latest.restore(step, args=ocp.args.Composite(**items))
        variables = restored["model"]
        return TrainState(
            step=restored["train"]["step"],
            params=subtree(variables["params"], target.params),
            frozen=subtree(variables["params"], target.frozen),
            batch_stats=variables["batch_stats"],
            opt_state=restored["train"]["opt_state"],
        )

    def _read_best_value(self) -> float | None:
        step = self.best.latest_step()
        if step is None:
            return None
        metrics = self.best.restore(step, args=ocp.args.Composite(metrics=ocp.args.JsonRestore()))[
            "metrics"
        ]
        if metrics.get("metric") != self.best_metric:
            log.warning(
                "best checkpoint was chosen by %r, this run ranks by %r: starting the ranking afresh",
                metrics.get("metric"),
                self.best_metric,
            )
            return None
        return float(metrics[self.best_metric])


def restore_model_variables(workdir: Workdir, which: str, target: Tree) -> tuple[Tree, int, str]:
    """The "model" item of the newest ``which`` ("best" | "latest") checkpoint, like ``target``.

    Falls back from "best" to "latest" (logged) when a run never evaluated.
    -> (variables, step, which it came from).
    """
    if which not in ("best", "latest"):
        raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    order = ["best", "latest"] if which == "best" else ["latest"]
    for source in order:
        steps = workdir.checkpoint_steps(source)
        if not steps:
            continue
        if source != which:
            log.warning(
                "%s has no best checkpoint (no validation ran): using latest step %d",
                workdir.root,
                steps[-1],
            )
        directory = workdir.best_dir if source == "best" else workdir.latest_dir
        with ocp.CheckpointManager(directory.absolute()) as manager:
            step = manager.latest_step()
            restored = manager.restore(
                step, args=ocp.args.Composite(model=ocp.args.StandardRestore(_abstract(target)))
            )
        return restored["model"], step, source
    raise FileNotFoundError(
        f"no checkpoint under {workdir.root / 'checkpoints'} (looked for {which})"
    )
