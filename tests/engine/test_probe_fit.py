"""The L-BFGS linear probe: patient folds, exact fits, balanced weighting, nested CV, the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_pipelines.splits import patient_folds
from engine.inference import load_run
from engine.mesh import make_mesh
from engine.probe_fit import (
    DEFAULT_L2_GRID,
    balanced_accuracy,
    balanced_log_loss,
    cross_validate,
    fit_probes,
)
from engine.run_log import read_metrics
from engine.trainer import train
from engine.workdir import Workdir


def _blobs(n: int, dims: int, priors, *, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(priors), size=n, p=priors)
    centres = rng.normal(size=(len(priors), dims)) * spread
    features = centres[labels] + rng.normal(size=(n, dims)) + 5.0  # offset: tests centring
    return features.astype(np.float32), labels


def test_patient_folds_keep_patients_whole_and_spread_classes():
    rng = np.random.default_rng(1)
    patients = [f"p{i // 3}" for i in range(300)]
    labels = np.repeat(rng.choice(4, size=100, p=[0.5, 0.25, 0.15, 0.1]), 3)
    folds = patient_folds(patients, labels, 5, seed=0)
    for patient in set(patients):
        assert len({folds[i] for i, p in enumerate(patients) if p == patient}) == 1
    for c in range(4):  # every class in every fold, within one patient of an even share
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.min() > 0 and per_fold.max() - per_fold.min() <= 3
    np.testing.assert_array_equal(folds, patient_folds(patients, labels, 5, seed=0))
    with pytest.raises(ValueError, match="at least 5 patients"):
        patient_folds(["a", "b", "a"], np.array([0, 1, 0]), 5, seed=0)


@pytest.mark.parametrize("dims", [20, 200])  # more rows than features, and fewer
def test_fit_is_the_exact_minimum_in_the_raw_feature_space(dims):
    """The gradient of the penalised loss, in the standardised raw space, vanishes at the fit:
    the row-space reduction and the fold back into raw features lose nothing."""
    features, labels = _blobs(60, dims, [0.5, 0.3, 0.2], spread=0.7)
    rows = np.arange(60) % 4 != 0  # fitted on three quarters of the rows
    l2 = 0.1
    ((fit,),) = fit_probes(features, labels, [rows], [l2], num_classes=3, balanced=False)
    x = features[rows].astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    z = (x - mean) / std
    kernel = fit.kernel * std[:, None]  # the same classifier in standardised coordinates
    probs = fit.probabilities(features[rows])
    onehot = np.eye(3)[labels[rows]]
    grad_kernel = z.T @ (probs - onehot) / len(z) + l2 * kernel
    grad_bias = (probs - onehot).mean(0)
    assert np.abs(grad_kernel).max() < 2e-3 and np.abs(grad_bias).max() < 2e-3


def test_balanced_weighting_recovers_the_rare_class():
    features, labels = _blobs(400, 8, [0.92, 0.08], spread=0.45, seed=3)
    rows = np.ones(len(labels), bool)
    ((plain,), (balanced,)) = [
        fit_probes(features, labels, [rows], [1e-2], num_classes=2, balanced=b)[0]
        for b in (False, True)
    ]
    rare = labels == 1
    recall = lambda fit: np.mean(fit.probabilities(features[rare]).argmax(1) == 1)
    assert recall(balanced) > recall(plain) + 0.2
    assert balanced_accuracy(balanced.probabilities(features), labels) > balanced_accuracy(
        plain.probabilities(features), labels
    )


def test_cross_validation_regularises_noise_more_than_signal():
    rng = np.random.default_rng(0)
    features, labels = _blobs(120, 100, [0.4, 0.35, 0.25], spread=1.0)
    folds = patient_folds([str(i // 2) for i in range(120)], labels, 4, seed=0)
    signal = cross_validate(features, labels, folds, num_classes=3, balanced=True)
    noise = cross_validate(features, rng.permutation(labels), folds, num_classes=3, balanced=True)
    assert noise.l2 > signal.l2
    assert signal.l2 == DEFAULT_L2_GRID[int(np.argmin(signal.cv_loss))]
    assert set(signal.outer_l2) <= set(DEFAULT_L2_GRID) and len(signal.outer_l2) == 4
    # Nested out-of-fold predictions: honest (near chance on noise, high on signal).
    assert balanced_accuracy(signal.oof_probabilities, labels) > 0.9
    assert balanced_accuracy(noise.oof_probabilities, labels) < 0.6
    assert balanced_log_loss(signal.oof_probabilities, labels) < 0.5
    by_accuracy = cross_validate(
        features, labels, folds, num_classes=3, balanced=True, select="balanced_accuracy"
    )
    best = by_accuracy.cv_balanced_accuracy.max()
    assert by_accuracy.cv_balanced_accuracy[DEFAULT_L2_GRID.index(by_accuracy.l2)] == best


def test_probe_run_fits_once_reports_cv_and_resumes_done(tiny_config):
    """Default linear probe: features once, nested-CV report, one checkpoint that is the fit."""
    mesh = make_mesh(8)
    config = tiny_config.replace(transfer="linear_probe", cv_folds=3)
    summary = train(config, mesh)
    assert (summary.step, summary.total_steps, summary.best_step) == (1, 1, 1)
    rows = read_metrics(Workdir(config.workdir))
    (fit,) = [r for r in rows if r.get("event") == "probe_fit"]
    assert fit["images"] == 48 and fit["folds"] == 3 and fit["l2"] in DEFAULT_L2_GRID
    assert fit["balanced_weighting"] is False  # the sample's classes have equal sizes
    report = json.loads((Workdir(config.workdir).root / "cv" / "report.json").read_text())
    assert report["provenance"]["images"] == 48 and "balanced_accuracy" in report["metrics"]
    assert isinstance(report["warnings"], list)
    # The checkpointed head is the fitted classifier; the backbone is untouched.
    run = load_run(config.workdir, "best")
    assert run.step == 1 and not np.allclose(np.asarray(run.model.head.kernel[...]), 0.0)
    again = train(config, mesh)
    assert again.resumed_from == 1 and again.step == 1
    assert [r["event"] for r in read_metrics(Workdir(config.workdir))].count("probe_fit") == 1
