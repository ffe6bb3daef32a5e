"""The loss against hand-computed values: masking, label smoothing, class weights."""

from __future__ import annotations

import numpy as np
import pytest

from engine.losses import balanced_class_weights, correct_count, cross_entropy

LOGITS = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 3.0]], np.float32)
LABELS = np.array([0, 0, 1], np.int32)


def _nll(logits, labels):
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels]


def test_mask_drops_padding_rows():
    mask = np.array([True, True, False])
    assert float(cross_entropy(LOGITS, LABELS, mask)) == pytest.approx(
        _nll(LOGITS, LABELS)[:2].mean(), rel=1e-6
    )
    assert float(correct_count(LOGITS, LABELS, mask)) == 1.0


def test_label_smoothing_mixes_in_the_uniform_target():
    logp = LOGITS - np.log(np.exp(LOGITS).sum(axis=1, keepdims=True))
    targets = np.eye(2)[LABELS] * 0.9 + 0.05
    expected = -(targets * logp).sum(axis=1).mean()
    assert float(cross_entropy(LOGITS, LABELS, label_smoothing=0.1)) == pytest.approx(
        expected, rel=1e-6
    )


def test_class_weights_normalise_by_the_weight_sum():
    weights = balanced_class_weights([30, 10])  # N / (K n_k)
    np.testing.assert_allclose(weights, [40 / 60, 40 / 20])
    w = weights[LABELS]
    expected = (w * _nll(LOGITS, LABELS)).sum() / w.sum()
    assert float(cross_entropy(LOGITS, LABELS, class_weights=weights)) == pytest.approx(
        expected, rel=1e-6
    )
    with pytest.raises(ValueError, match="every class"):
        balanced_class_weights([5, 0])
