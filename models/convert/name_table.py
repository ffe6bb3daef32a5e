"""Applying a converter's name table: ``{source name: (flax path, transform)}``.

Shared by every source so that all refuse foreign files the same way: tensors the table does
not use raise ``ValueError`` (so a ResNet-34 file is not quietly read as the ResNet-18 whose
tensors it happens to contain); a tensor the table expects but the file lacks raises
``KeyError``. ``models.convert.convert_file`` turns both into a WeightFileError naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]
NameTable = Mapping[str, tuple[str, Transform]]


def show(names: list[str], limit: int = 8) -> str:
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def apply_table(
    flat: Mapping[str, np.ndarray],
    table: NameTable,
    arch: str,
    *,
    ignored: Callable[[str], bool] = lambda name: False,
) -> dict[str, np.ndarray]:
    """Rename and transform ``flat`` into flat Flax params; ``ignored(name)`` marks tensors
    that are dropped on purpose (e.g. BatchNorm's ``num_batches_tracked`` counters).
    Unused tensors are reported before missing ones: they name the foreign architecture."""
    unused = sorted(k for k in flat if k not in table and not ignored(k))
    if unused:
        raise ValueError(
            f"{len(unused)} tensors that {arch} does not have ({show(unused)}): the file is for "
            "another architecture"
        )
    missing = [k for k in table if k not in flat]
    if missing:
        raise KeyError(f"{len(missing)} of the {len(table)} tensors of {arch}: {show(missing)}")
    return {flax_path: transform(flat[name]) for name, (flax_path, transform) in table.items()}
