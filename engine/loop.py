"""The training loop: steps, periodic hooks, the non-finite check and clean stops.

The body stays short (STYLE.md lesson 10): step metrics stay on the device and are fetched
together every ``flush_every`` steps and whenever a hook is due; a non-finite loss or
gradient norm among them stops the run naming the first bad step and the last checkpoint,
which is always older than the bad step because hooks (checkpointing included) only run
after a clean fetch. Evaluation, checkpointing and logging are hooks with ``every=N``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import jax

from engine.preemption import StopRequest
from engine.progress import ProgressBar
from engine.state import TrainState

StepFn = Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]]


class Hook(Protocol):
    """Runs after step ``step`` when ``step % every == 0`` and after the last step."""

    every: int

    def __call__(self, step: int, state: TrainState, summary: dict[str, float]) -> None: ...


class NonFiniteError(FloatingPointError):
    """The loss or gradient norm became NaN/Inf; names the step and the checkpoint to go back to."""

    def __init__(self, step: int, name: str, value: float, last_checkpoint: str | None) -> None:
        self.step, self.name, self.value, self.last_checkpoint = step, name, value, last_checkpoint
        where = last_checkpoint or "none (no checkpoint was written before it)"
        super().__init__(
            f"{name} is {value} at step {step}: training stopped. Last good checkpoint: {where}. "
            "Resuming the same workdir restarts from it; consider a lower --lr or --clip_norm."
        )


@dataclasses.dataclass
class StepSetup:
    """What a run's transfer mode (or task) decides: its step, its batches, its validation."""

    step_fn: StepFn
    # Endless iterator of global batches with Grain's get_state/set_state: its position is
    # saved with every latest checkpoint and restored on resume.
    batches: Any
    evaluate: Callable[[TrainState], dict[str, float]] | None  # None: no validation split


@dataclasses.dataclass
class LoopResult:
    state: TrainState
    step: int
    stopped: str | None  # None when all steps ran; else why it stopped early (e.g. "SIGTERM")


def summarise(
    pending: list[dict[str, Any]],
    first_step: int,
    seconds: float,
    last_checkpoint: Callable[[], str | None],
    untimed: int = 0,
) -> dict[str, float]:
    """Fetch pending step metrics, check them, and average them into one summary.

    The first ``untimed`` steps (the one that compiled) do not count towards images/s.
    """
    fetched = jax.device_get(pending)
    for offset, metrics in enumerate(fetched):
        for name in ("loss", "grad_norm"):
            value = float(metrics.get(name, 0.0))
            if not math.isfinite(value):
                raise NonFiniteError(first_step + offset, name, value, last_checkpoint())
    count = sum(float(m["count"]) for m in fetched)
    timed = fetched[untimed:]
    summary = {
        "loss": sum(float(m["loss"]) for m in fetched) / len(fetched),
        "accuracy": sum(float(m["correct"]) for m in fetched) / max(count, 1.0),
        "lr": float(fetched[-1]["lr"]),
    }
    if timed and seconds > 0:
        summary["images_per_sec"] = sum(float(m["count"]) for m in timed) / seconds
        summary["steps_per_sec"] = len(timed) / seconds
    if "grad_norm" in fetched[-1]:
        summary["grad_norm"] = sum(float(m["grad_norm"]) for m in fetched) / len(fetched)
    return summary


def train_loop(
    state: TrainState,
    train_step: StepFn,
    batches: Iterator[Any],
    *,
    total_steps: int,
    hooks: Sequence[Hook] = (),
    flush_every: int = 10,
    stop: StopRequest | None = None,
    on_stop: Callable[[int, TrainState], None] | None = None,
    last_checkpoint: Callable[[], str | None] = lambda: None,
    progress: ProgressBar | None = None,
) -> LoopResult:
    """Run ``train_step`` from ``state.step`` up to ``total_steps``.

    On a stop request the pending metrics are checked, ``on_stop(step, state)`` runs (the
    trainer saves a checkpoint there) and the loop returns with ``stopped`` set.
    """
    stop = stop or StopRequest()
    step = start = int(jax.device_get(state.step))
    multi_process = jax.process_count() > 1
    pending: list[dict[str, Any]] = []
    tick = time.perf_counter()
    untimed = 0

    def flush() -> dict[str, float]:
        nonlocal pending, untimed
        jax.block_until_ready(pending)  # steps are dispatched asynchronously: time their end
        seconds = time.perf_counter() - tick
        summary = summarise(pending, step - len(pending) + 1, seconds, last_checkpoint, untimed)
        pending, untimed = [], 0
        if progress is not None:
            progress.update(step, summary)
        return summary

    while step < total_steps:
        state, metrics = train_step(state, next(batches))
        step += 1
        pending.append(metrics)
        if len(pending) == 1 and step == start + 1:  # compiled: time the steps after it
            jax.block_until_ready(metrics)
            tick, untimed = time.perf_counter(), 1
        due = [h for h in hooks if step % h.every == 0 or step == total_steps]
        at_flush = due or step % flush_every == 0
        stopping = (
            stop.agreed()
            if (multi_process and at_flush)
            else (not multi_process and stop.requested)
        )
        if not (at_flush or stopping):
            continue
        summary = flush()
        for hook in due:
            hook(step, state, summary)
        if stopping:
            if on_stop is not None:
                on_stop(step, state)
            return LoopResult(state, step, stop.reason)
        tick = time.perf_counter()
    if pending:
        flush()
    return LoopResult(state, step, None)
