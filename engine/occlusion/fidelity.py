"""How close an approximate occlusion map is to the exact one: peak agreement and SSIM.

Why: Krypton's approximations (projective-field threshold, adaptive drill-down) trade accuracy
for speed, so every approximate run reports what it gave up, measured against the exact map
of the same images:
- ``peak_agreement``: fraction of images whose largest-drop window is the exact map's;
  ``peak_overlap``: fraction whose largest-drop windows overlap (share pixels);
- SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) of the two drop maps, per image: Gaussian
  window sigma 1.5 (truncated at 3.5 sigma, population covariances: scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``),
  K1 = 0.01, K2 = 0.03, data range = the exact map's max - min.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def _gaussian_filter(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D map, borders reflected (scikit-image's default)."""
    radius = int(3.5 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = a
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        out = sum(
            taps[k] * np.take(padded, np.arange(k, k + out.shape[axis]), axis=axis)
            for k in range(len(taps))
        )
    return out


def ssim(test: np.ndarray, reference: np.ndarray, *, sigma: float = 1.5) -> float:
    """Mean SSIM of two 2-D maps (the reference's range sets the constants)."""
    x, y = np.asarray(test, np.float64), np.asarray(reference, np.float64)
    data_range = float(y.max() - y.min()) or 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _gaussian_filter(x, sigma), _gaussian_filter(y, sigma)
    vx = _gaussian_filter(x * x, sigma) - mx * mx
    vy = _gaussian_filter(y * y, sigma) - my * my
    vxy = _gaussian_filter(x * y, sigma) - mx * my
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    pad = int(3.5 * sigma + 0.5)  # scikit-image crops the filter's border before averaging
    inner = s[pad:-pad, pad:-pad] if min(s.shape) > 2 * pad else s
    return float(inner.mean())


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """An approximate map set against the exact one; ``summary.json``'s ``fidelity`` entry."""

    images: int
    peak_agreement: float  # same largest-drop window
    peak_overlap: float  # largest-drop windows overlap
    ssim_mean: float
    ssim_min: float
    max_abs_error: float
    exact_seconds: float | None = None  # what the exact reference cost, when timed

    def to_dict(self) -> dict[str, float]:
        out = dataclasses.asdict(self)
        if self.exact_seconds is None:
            del out["exact_seconds"]
        return out


def compare(approximate, exact) -> Fidelity:
    """Fidelity of an approximate ``OcclusionResult`` against the exact one (same images)."""
    if approximate.drops.shape != exact.drops.shape:
        raise ValueError(f"maps differ in shape: {approximate.drops.shape} vs {exact.drops.shape}")
    a, e = approximate.peak_boxes(), exact.peak_boxes()
    same = np.all(a == e, axis=1)
    overlap = (np.minimum(a[:, 2], e[:, 2]) > np.maximum(a[:, 0], e[:, 0])) & (
        np.minimum(a[:, 3], e[:, 3]) > np.maximum(a[:, 1], e[:, 1])
    )
    scores = [ssim(x, y) for x, y in zip(approximate.drops, exact.drops, strict=True)]
    return Fidelity(
        images=len(scores),
        peak_agreement=float(same.mean()),
        peak_overlap=float(overlap.mean()),
        ssim_mean=float(np.mean(scores)),
        ssim_min=float(np.min(scores)),
        max_abs_error=float(np.abs(approximate.drops - exact.drops).max()),
    )
