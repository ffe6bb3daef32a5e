"""Where a run's numbers go: ``metrics.jsonl`` (for machines) and TensorBoard event files.

Only process 0 writes; other processes get a no-op log, so call sites need no checks.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from tensorboardX import SummaryWriter

from engine.workdir import Workdir


class RunLog:
    """Append-only metrics log of one run."""

    def __init__(self, workdir: Workdir, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        if not enabled:
            return
        workdir.root.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(workdir.metrics_path, "a", buffering=1)  # noqa: SIM115 (closed in close())
        if tensorboard:
            self._tb = SummaryWriter(logdir=str(workdir.tb_dir), flush_secs=30)

    def scalars(self, split: str, step: int, values: dict[str, float]) -> None:
        """One row ``{"step", "split", **values}``; TensorBoard tags ``<split>/<name>``."""
        if not self.enabled:
            return
        row = {"step": step, "split": split, "time": round(time.time(), 3)}
        row.update({k: _jsonable(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for name, value in values.items():
                if isinstance(value, int | float) and math.isfinite(float(value)):
                    self._tb.add_scalar(f"{split}/{name}", float(value), step)

    def event(self, name: str, **fields: Any) -> None:
        """A non-numeric record: ``{"event": name, ...}`` (resumes, caches, stops)."""
        if not self.enabled:
            return
        row = {"event": name, "time": round(time.time(), 3)} | {
            k: _jsonable(v) for k, v in fields.items()
        }
        self._jsonl.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_metrics(workdir: Workdir) -> list[dict[str, Any]]:
    """All rows of ``metrics.jsonl`` (empty when the run has logged nothing)."""
    if not workdir.metrics_path.is_file():
        return []
    return [
        json.loads(line) for line in workdir.metrics_path.read_text().splitlines() if line.strip()
    ]
