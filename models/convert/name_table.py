"""Applying a converter's name table: entries ``(source name, flax path, transform)``.

Several Flax parameters may come from one source tensor (e.g. Keras' BatchNorm without a
scale: the scale is ``ones_like`` its beta), hence entries rather than a dict.

Shared by every source so that all refuse foreign files the same way: tensors the table does
not use raise ``ValueError`` (so a ResNet-34 file is not quietly read as the ResNet-18 whose
tensors it happens to contain); a tensor the table expects but the file lacks raises
``KeyError``. ``models.convert.convert_file`` turns both into a WeightFileError naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]
Entry = tuple[str, str, Transform]  # (source name, flax path, transform)


def show(names: list[str], limit: int = 8) -> str:
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def apply_table(
    flat: Mapping[str, np.ndarray],
    rows: Iterable[Entry],
    arch: str,
    *,
    ignored: Callable[[str], bool] = lambda name: False,
) -> dict[str, np.ndarray]:
    """Rename and transform ``flat`` into flat Flax params; ``ignored(name)`` marks tensors
    that are dropped on purpose (e.g. BatchNorm's ``num_batches_tracked`` counters).
    Unused tensors are reported before missing ones: they name the foreign architecture."""
    rows = list(rows)
    used = {name for name, _, _ in rows}
    unused = sorted(k for k in flat if k not in used and not ignored(k))
    if unused:
        raise ValueError(
            f"{len(unused)} tensors that {arch} does not have ({show(unused)}): the file is for "
            "another architecture"
        )
    missing = list(dict.fromkeys(name for name, _, _ in rows if name not in flat))
    if missing:
        raise KeyError(f"{len(missing)} of the {len(used)} tensors of {arch}: {show(missing)}")
    return {flax_path: transform(flat[name]) for name, flax_path, transform in rows}


def entries(table: Mapping[str, tuple[str, Transform]]) -> list[Entry]:
    """A ``{source name: (flax path, transform)}`` table as entries."""
    return [(name, flax_path, transform) for name, (flax_path, transform) in table.items()]
