"""A one-line terminal progress bar: step, loss, accuracy, learning rate, images/s, ETA.

Redrawn in place on a terminal; on a pipe or log file it prints one line per update instead,
so CI logs stay readable.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    def __init__(
        self,
        total_steps: int,
        *,
        start_step: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
        width: int = 24,
    ) -> None:
        self.total = max(total_steps, 1)
        self.start_step = start_step
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.width = width
        self.started = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, step: int, values: dict[str, float]) -> str:
        done = step / self.total
        filled = round(done * self.width)
        elapsed = time.perf_counter() - self.started
        rate = (step - self.start_step) / elapsed if elapsed > 0 and step > self.start_step else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        parts = [f"[{'#' * filled}{'.' * (self.width - filled)}] {step}/{self.total}"]
        for key, fmt in (
            ("loss", "loss {:.4f}"),
            ("accuracy", "acc {:.3f}"),
            ("lr", "lr {:.2e}"),
            ("images_per_sec", "{:.0f} img/s"),
        ):
            if key in values:
                parts.append(fmt.format(values[key]))
        parts.append(f"ETA {_clock(eta)}" if math.isfinite(eta) else "ETA ?")
        return "  ".join(parts)

    def update(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        text = self.line(step, values)
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own that does not garble the bar."""
        if not self.enabled:
            return
        self.stream.write(("\n" if self.tty else "") + text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
