"""Moving flat ``{path: array}`` dicts in and out of NNX modules, loudly.

Every load reports what is only in the file, what is only in the model, which shapes
disagree and what was deliberately left out, then refuses unless all of it is expected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

log = logging.getLogger(__name__)

WEIGHT_TYPES = nnx.Any(nnx.Param, nnx.BatchStat)


class WeightMismatchError(ValueError):
    """The weights do not fit the model; the message lists every difference."""


def path_to_key(path: tuple) -> str:
    return "/".join(str(p) for p in path)


def flat_state(module: nnx.Module) -> dict[str, np.ndarray]:
    """Parameters and BatchNorm statistics of ``module`` as ``{"a/0/kernel": array}``."""
    state = nnx.state(module, WEIGHT_TYPES)
    return {path_to_key(p): np.asarray(v[...]) for p, v in nnx.to_flat_state(state)}


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p.rstrip("/") + "/") for p in prefixes)


def load_flat_state(
    module: nnx.Module,
    weights: Mapping[str, np.ndarray],
    *,
    source: str,
    skip: Iterable[str] = (),
    strict: bool = True,
) -> list[str]:
    """Copy ``weights`` into ``module`` in place; returns the keys that were loaded.

    ``skip`` lists path prefixes that are deliberately not loaded (e.g. the classifier when
    the class count differs). Any other missing, unexpected or mis-shaped key raises
    :class:`WeightMismatchError` (when ``strict``) with every difference listed.
    """
    skip = tuple(skip)
    state = nnx.state(module, WEIGHT_TYPES)
    model_vars = {path_to_key(p): v for p, v in nnx.to_flat_state(state)}
    only_file = sorted(k for k in weights if k not in model_vars and not _under(k, skip))
    only_model = sorted(k for k in model_vars if k not in weights and not _under(k, skip))
    bad_keys = {
        k
        for k in weights
        if k in model_vars
        and not _under(k, skip)
        and tuple(np.shape(weights[k])) != tuple(model_vars[k].get_value().shape)
    }
    shape_bad = sorted(
        f"{k}: file {tuple(np.shape(weights[k]))} vs model {tuple(model_vars[k].get_value().shape)}"
        for k in bad_keys
    )
    skipped = sorted(k for k in model_vars if _under(k, skip))
    problems = []
    if only_file:
        problems.append(f"{len(only_file)} keys only in the file: {_show(only_file)}")
    if only_model:
        problems.append(f"{len(only_model)} keys only in the model: {_show(only_model)}")
    if shape_bad:
        problems.append(f"{len(shape_bad)} shape mismatches: {_show(shape_bad)}")
    if skipped:
        log.info("%s: not loaded on purpose: %s", source, _show(skipped))
    if problems and strict:
        raise WeightMismatchError(
            f"{source} does not fit {type(module).__name__}:\n  " + "\n  ".join(problems)
        )
    for msg in problems:
        log.warning("%s: %s", source, msg)
    loaded = []
    for key, var in model_vars.items():
        if key in weights and not _under(key, skip) and key not in bad_keys:
            # set_value, not var[...] =: the module may be abstract (nnx.eval_shape)
            var.set_value(jnp.asarray(weights[key], dtype=var.get_value().dtype))
            loaded.append(key)
    nnx.update(module, state)
    return loaded


def _show(items: list[str], limit: int = 12) -> str:
    head = ", ".join(items[:limit])
    return head + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
