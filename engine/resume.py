"""Whether a workdir's checkpoint may be continued by a run with this configuration.

A resume is exact (bitwise the parameters of a run never stopped) only when every setting
that decides what a step computes or which examples it sees is unchanged. Which fields
those are is kept beside the fields (``engine.config.RESUME_FREE`` lists the ones that may
change); a new field counts as exact until listed there. What the data and weights decided
at start (class names, batch size, example count, preprocessing) is compared too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from engine.config import RESUME_FREE, TrainConfig
from engine.workdir import Workdir

log = logging.getLogger(__name__)

# Keys of config.json that trainer.resolved_config adds and that must not change either.
RESOLVED_EXACT = ("num_classes", "class_names", "global_batch_size", "train_examples", "metadata")


def _defaults() -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(TrainConfig):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[f.name] = json.loads(json.dumps(value, default=str))
    return out


def resume_differences(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """-> (changes that break exactness, harmless changes), each as ``"key: old -> new"``.

    A field missing from an older config.json counts as its default; a resolved key missing
    from it is not compared (written by an older version).
    """
    new = json.loads(json.dumps(new, default=str))  # tuples -> lists, as config.json holds them
    defaults = _defaults()
    exact, free = [], []
    for key in [*defaults, *RESOLVED_EXACT]:
        if key not in old and key not in defaults:
            continue
        before, after = old.get(key, defaults.get(key)), new.get(key)
        if before != after:
            if key == "metadata":
                keys = sorted(set(before or {}) | set(after or {}))
                changed = [k for k in keys if (before or {}).get(k) != (after or {}).get(k)]
                text = f"metadata fields {changed}"
            else:
                text = f"{key}: {before!r} -> {after!r}"
            (free if key in RESUME_FREE else exact).append(text)
    return exact, free


def check_resumable(workdir: Workdir, new: dict[str, Any]) -> None:
    """Refuse (ValueError listing the differences) a resume that could not be exact."""
    old = workdir.read_config()
    exact, free = resume_differences(old, new)
    if exact:
        raise ValueError(
            f"{workdir.root} holds a checkpoint of a different run ({'; '.join(exact)}): "
            "these change what a resumed step computes or which examples it sees; use a new "
            "--workdir or the original settings"
        )
    if free:
        log.info("resuming %s with changed settings: %s", workdir.root, "; ".join(free))
    if (
        old.get("total_steps") not in (None, new.get("total_steps"))
        and new.get("schedule") != "constant"
    ):
        log.warning(
            "total steps %s -> %s: the %s learning-rate schedule is re-laid over the new total",
            old.get("total_steps"),
            new.get("total_steps"),
            new.get("schedule"),
        )
