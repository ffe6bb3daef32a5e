"""Named tensor transforms between frameworks' layouts (kept apart from name mapping)."""

from __future__ import annotations

import numpy as np


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    """PyTorch conv kernel (out, in/groups, kh, kw) -> Flax (kh, kw, in/groups, out).

    Also right for depthwise kernels: torch (C, 1, kh, kw) -> Flax (kh, kw, 1, C) used with
    ``feature_group_count=C``.
    """
    if w.ndim != 4:
        raise ValueError(f"expected a 4-D conv kernel, got shape {w.shape}")
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def linear_transpose(w: np.ndarray) -> np.ndarray:
    """PyTorch Linear weight (out, in) -> Flax kernel (in, out)."""
    if w.ndim != 2:
        raise ValueError(f"expected a 2-D linear weight, got shape {w.shape}")
    return np.ascontiguousarray(w.T)


def identity(w: np.ndarray) -> np.ndarray:
    """Same layout in both frameworks (biases, BatchNorm scale/bias/mean/var)."""
    return np.asarray(w)


def ones_like(w: np.ndarray) -> np.ndarray:
    """A parameter the source leaves out because it is fixed at 1, shaped like a sibling.

    Keras ``BatchNormalization(scale=False)`` (Keras Inception-V3) stores no gamma; the Flax
    BatchNorm ``scale`` is then 1, built in the shape of the stored beta.
    """
    return np.ones_like(np.asarray(w))
