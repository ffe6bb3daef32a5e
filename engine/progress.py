"""Progress on tqdm: the training bar (step, loss, accuracy, lr, images/s, ETA) and counters.

On a terminal a tqdm bar is redrawn in place; on a pipe or log file each update is one line
formatted by tqdm (``tqdm.format_meter``, the same fields) instead, at most one per
``every_s`` seconds plus the last, so CI logs stay readable. Callers decide how often to
update (the trainer: every ``--log_every`` steps).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

# Training values shown after the bar, in this order, when present.
SHOWN = (
    ("loss", "loss {:.4f}"),
    ("accuracy", "acc {:.3f}"),
    ("lr", "lr {:.2e}"),
    ("images_per_sec", "{:.0f} img/s"),
)
BAR_FORMAT = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit}{postfix}  ETA {remaining}"


def postfix(values: dict[str, float]) -> str:
    """The training values after the bar (tqdm puts ", " before a non-empty postfix)."""
    return "  ".join(fmt.format(values[key]) for key, fmt in SHOWN if key in values)


class ProgressBar:
    """Progress towards ``total_steps``; rate and ETA count from ``start_step`` (a resume).

    ``start_step`` may be set until the first :meth:`update`. ``message`` prints a line of
    its own without garbling the bar.
    """

    def __init__(
        self,
        total_steps: int,
        *,
        start_step: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
        label: str = "",
        unit: str = "steps",
        every_s: float = 0.0,
    ) -> None:
        self.total = max(total_steps, 1)
        self.start_step = start_step
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.label = label
        self.unit = unit
        self.every_s = every_s
        self.started = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: tqdm | None = None
        self._last_line = float("-inf")

    def line(self, step: int, values: dict[str, float]) -> str:
        """The one-line form (what a pipe or log file gets)."""
        return tqdm.format_meter(
            step,
            self.total,
            time.perf_counter() - self.started,
            prefix=f"{self.label}: " if self.label else "",
            unit=self.unit,
            postfix=postfix(values),
            initial=self.start_step,
            ascii=True,
            bar_format=BAR_FORMAT,
        )

    def update(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.tty:
            bar = self._live_bar()
            bar.set_postfix_str(postfix(values), refresh=False)
            bar.update(step - bar.n)
            bar.refresh()
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every_s or step >= self.total:
            self._last_line = now
            self.stream.write(self.line(step, values) + "\n")
            self.stream.flush()

    def _live_bar(self) -> tqdm:
        if self._bar is None:
            self._bar = tqdm(
                total=self.total,
                initial=self.start_step,
                desc=f"{self.label}: " if self.label else "",
                unit=self.unit,
                file=self.stream,
                bar_format=BAR_FORMAT,
                dynamic_ncols=True,
                mininterval=0.0,
                smoothing=0.0,  # rate = steps since start_step / elapsed, as on a pipe
            )
            # Elapsed time counts from construction, as on a pipe (tqdm's clock is time.time).
            self._bar.start_t -= time.perf_counter() - self.started
        return self._bar

    def message(self, text: str) -> None:
        """A line of its own that does not garble the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def counter(
    label: str, unit: str, *, stream: TextIO | None = None, every_s: float = 5.0
) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback (occlusion sweeps, overlays) drawn by
    :class:`ProgressBar`."""
    bar: ProgressBar | None = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressBar(
                total, label=label, unit=unit, stream=stream or sys.stderr, every_s=every_s
            )
        bar.update(done, {})
        if done >= total:
            bar.close()
            bar = None

    return report
