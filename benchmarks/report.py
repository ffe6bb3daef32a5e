"""One JSON object per line on stdout: ``name``, ``value``, ``unit`` (+ ``vs``/``ratio``)."""

from __future__ import annotations

import json
import platform
import sys
import time
from typing import Any

import jax


def emit(
    name: str,
    value: float,
    unit: str,
    *,
    vs: str | None = None,
    ratio: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "value": round(float(value), 6), "unit": unit}
    if vs is not None:
        row["vs"] = vs
        row["ratio"] = None if ratio is None else round(float(ratio), 4)
    row.update(extra)
    print(json.dumps(row), flush=True)
    return row


def machine() -> dict[str, Any]:
    """What ran the benchmark, for the BENCHMARKS.md table."""

    dev = jax.devices()[0]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "cpu": platform.processor() or platform.machine(),
    }


def mean_step_seconds(step, *, warmup: int, steps: int) -> float:
    """Mean wall time of ``step()`` over ``steps`` calls after ``warmup`` untimed ones (a
    synchronous peer, e.g. an eager PyTorch training step)."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def timed(fn, *, repeat: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``fn()`` over ``repeat`` runs after ``warmup`` (seconds)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def compiled_flops(cost: Any) -> float:
    """Total ``flops`` of ``Compiled.cost_analysis()`` (a dict, or a list of per-module dicts;
    NaN when the backend gives none)."""
    if cost is None:
        return float("nan")
    parts = cost if isinstance(cost, list | tuple) else [cost]
    return float(sum(part.get("flops", 0.0) for part in parts if part))
