"""Pixel-wise Pearson correlation between predicted and true fluorescence, with well-level CIs.

The paper's measure of In Silico Labeling accuracy (Christiansen et al. 2018, Figures 4-6):
Pearson's r over all pixels of a label in the held-out images. Here each well contributes
its valid pixels (``target_mask``); r is computed from per-well sums (n, sum x, sum y,
sum x^2, sum y^2, sum xy), so the 95% CI is a percentile bootstrap that resamples whole
wells with replacement (``engine.evaluation.metrics.bootstrap_indices``, the same helper the
classification report resamples patients with) and pools their pixels, cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.evaluation.metrics import bootstrap_indices


def well_sums(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[L, 6]`` sufficient statistics of one well (``[H, W, L]`` arrays), float64."""
    out = np.zeros((pred.shape[-1], 6))
    for label in range(pred.shape[-1]):
        keep = mask[..., label] > 0.5
        x = pred[..., label][keep].astype(np.float64)
        y = true[..., label][keep].astype(np.float64)
        out[label] = (len(x), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
    return out


def pearson_from_sums(sums: np.ndarray) -> np.ndarray:
    """r per row of ``[..., 6]`` pooled sums; NaN where a side has no variance or no pixels."""
    n, sx, sy, sxx, syy, sxy = np.moveaxis(sums, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        var = (sxx - sx * sx / n) * (syy - sy * sy / n)
        return np.where((n > 1) & (var > 0), cov / np.sqrt(np.clip(var, 0, None)), np.nan)


def pearson(pred: np.ndarray, true: np.ndarray) -> float:
    """Plain Pearson r of two arrays (all elements)."""
    sums = np.array(
        [
            pred.size,
            pred.sum(),
            true.sum(),
            (pred * pred).sum(),
            (true * true).sum(),
            (pred * true).sum(),
        ],
        np.float64,
    )
    return float(pearson_from_sums(sums))


def pearson_by_label(
    per_well: Sequence[np.ndarray],
    wells: Sequence[str],
    labels: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float | None]]:
    """``{label: {"r", "ci_low", "ci_high", "pixels", "wells"}}`` from per-well sums ``[L, 6]``.

    Wells with no valid pixel of a label do not count towards that label. The CI is None
    with fewer than two such wells (nothing to resample).
    """
    stacked = np.stack(per_well)  # [N, L, 6]
    out: dict[str, dict[str, float | None]] = {}
    draws = bootstrap_indices(list(wells), n_resamples, seed) if n_resamples else []
    for i, label in enumerate(labels):
        has = stacked[:, i, 0] > 0
        r = float(pearson_from_sums(stacked[has, i].sum(axis=0))) if has.any() else float("nan")
        lo = hi = None
        if has.sum() >= 2 and draws:
            reps = np.array(
                [pearson_from_sums(stacked[idx, i][has[idx]].sum(axis=0)) for idx in draws]
            )
            reps = reps[np.isfinite(reps)]
            if len(reps):
                lo, hi = (float(v) for v in np.percentile(reps, [2.5, 97.5]))
        out[label] = {
            "r": r,
            "ci_low": lo,
            "ci_high": hi,
            "pixels": int(stacked[has, i, 0].sum()),
            "wells": int(has.sum()),
        }
    return out
