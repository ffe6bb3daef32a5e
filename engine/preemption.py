"""Stop requests: SIGTERM (a TPU/cloud preemption notice) and Ctrl-C end a run cleanly.

The handler only sets a flag; the loop notices it between steps, saves a checkpoint and
returns. A second Ctrl-C raises ``KeyboardInterrupt`` at once (for a run stuck elsewhere).
With several processes the flag is agreed on collectively (any process stopping stops all,
at the same step), because a checkpoint save is a collective operation.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils


class StopRequest:
    """A flag set by signals (or by :meth:`request`), read by the training loop."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._interrupts = 0

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def agreed(self) -> bool:
        """True on every process when any process was asked to stop (collective if >1)."""
        if jax.process_count() == 1:
            return self.requested
        flags = multihost_utils.process_allgather(np.asarray(self.requested, np.int32))
        if np.any(flags) and self.reason is None:
            self.reason = "another process was asked to stop"
        return bool(np.any(flags))

    def _on_signal(self, signum: int, frame: object) -> None:
        del frame
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                raise KeyboardInterrupt
        self.request(name)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Route SIGTERM and SIGINT to this object while the block runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
