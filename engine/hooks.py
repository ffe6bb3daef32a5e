"""Periodic actions of the training loop (``every=N`` steps): logging, validation, checkpoints.

Each hook is a small callable object; the loop calls it after a clean metrics fetch, so a
hook never sees (or saves) a state that produced a non-finite loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from engine.checkpoints import RunCheckpoints
from engine.progress import ProgressBar
from engine.run_log import RunLog
from engine.state import TrainState


@dataclasses.dataclass
class LogHook:
    """Training metrics (averaged since the last fetch) to metrics.jsonl and TensorBoard."""

    every: int
    log: RunLog

    def __call__(self, step: int, state: TrainState, summary: dict[str, float]) -> None:
        del state
        self.log.scalars("train", step, summary)


@dataclasses.dataclass
class ValidationHook:
    """Evaluate on the validation split; keep the best checkpoint by ``checkpoints.best_metric``."""

    every: int
    evaluate: Callable[[TrainState], dict[str, float]]
    checkpoints: RunCheckpoints
    log: RunLog
    progress: ProgressBar | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __call__(self, step: int, state: TrainState, summary: dict[str, float]) -> None:
        del summary
        metrics = self.evaluate(state)
        best = self.checkpoints.save_best_if_better(state, metrics)
        self.log.scalars("val", step, metrics | {"is_best": int(best)})
        self.history.append({"step": step, **metrics, "is_best": best})
        if self.progress is not None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "count")
            self.progress.message(
                f"step {step} validation: {shown}{'  (best so far)' if best else ''}"
            )


@dataclasses.dataclass
class CheckpointHook:
    """Save the latest checkpoint (train state + data iterator position), asynchronously."""

    every: int
    checkpoints: RunCheckpoints
    data_iter: Any = None

    def __call__(self, step: int, state: TrainState, summary: dict[str, float]) -> None:
        del summary
        self.checkpoints.save_latest(state, self.data_iter, step=step)
