"""Fidelity measures of approximate occlusion maps: SSIM equals scikit-image's, peaks agree."""

from __future__ import annotations

import numpy as np
import pytest

from engine.occlusion.fidelity import compare, ssim
from engine.occlusion.sweep import OcclusionResult


@pytest.mark.foreign
def test_ssim_equals_scikit_image():
    from skimage import metrics

    rng = np.random.default_rng(0)
    for shape in [(40, 40), (51, 51), (13, 17)]:
        a = rng.normal(size=shape)
        b = a + 0.3 * rng.normal(size=shape)
        ref = metrics.structural_similarity(
            b,
            a,
            data_range=a.max() - a.min(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert ssim(b, a) == pytest.approx(ref, abs=1e-9)


def test_ssim_identical_is_one_and_noise_lowers_it():
    a = np.random.default_rng(1).normal(size=(30, 30))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a + np.random.default_rng(2).normal(size=a.shape), a) < 0.8


def _result(drops: np.ndarray) -> OcclusionResult:
    n, gy, gx = drops.shape
    return OcclusionResult(
        probabilities=np.full((n, 2), 0.5),
        targets=np.zeros(n, np.int64),
        drops=drops,
        ys=np.arange(gy) * 4,
        xs=np.arange(gx) * 4,
        window=8,
        image_shape=(4 * gy + 4, 4 * gx + 4),
    )


def test_compare_peaks():
    exact = np.zeros((2, 10, 10))
    exact[0, 2, 3] = exact[1, 7, 7] = 1.0
    approx = exact.copy()
    approx[1, 7, 7], approx[1, 7, 8] = 0.5, 1.0  # peak moved by one window (4 px): overlaps
    got = compare(_result(approx), _result(exact))
    assert got.peak_agreement == 0.5
    assert got.peak_overlap == 1.0
    assert got.max_abs_error == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        compare(_result(approx[:, :5]), _result(exact))
