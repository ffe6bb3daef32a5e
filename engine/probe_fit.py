"""The linear probe fitted the way the representation-learning literature fits one.

Why: a classifier trained by 50 minibatch steps and picked by plain accuracy on a small,
imbalanced set never names the rare classes. A linear probe on cached features is a convex
problem that costs milliseconds per pass, so it is solved outright:

- multinomial logistic regression on standardised features (mean / std of the rows it is fitted
  on), minimised to convergence by full-batch L-BFGS in float64 (scipy: a few hundred
  parameters per class after the row-space reduction below, so the host solves each fit in
  milliseconds, where a jitted solver spends its time in loop overhead);
- every class weighs the same in the loss when ``class_weights`` says so (balanced weighting);
- the L2 strength is the one with the lowest balanced log loss (mean over classes of each
  class's held-out negative log likelihood) over patient-grouped folds of the training images;
  strengths are solved from the largest down, each warm-started from the last;
- nested cross-validation gives an honest estimate: each outer fold's strength is chosen on the
  other folds only, then that fold is predicted by a classifier that never saw its patients;
- the final classifier is fitted on every training image and folded back into the raw feature
  space, so the saved network is the plain backbone plus its usual head.

"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import scipy.optimize
from threadpoolctl import threadpool_limits

# L2 strengths tried (on standardised features, loss averaged per image).
SMALL_PROBLEM = 4_000_000  # images x row-space dimensions solved on one BLAS thread
DEFAULT_L2_GRID = tuple(float(v) for v in np.logspace(-4, 2, 13))


@dataclasses.dataclass(frozen=True)
class LinearClassifier:
    """``logits = features @ kernel + bias`` in the raw (unstandardised) feature space."""

    kernel: np.ndarray  # [D, C]
    bias: np.ndarray  # [C]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = np.asarray(features, np.float64) @ self.kernel + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class ProbeCV:
    """What cross-validation found (every array in example order)."""

    l2_grid: tuple[float, ...]
    folds: np.ndarray  # [N] fold id of each example
    cv_loss: np.ndarray  # [L] balanced log loss of each strength, held-out rows of all folds
    cv_balanced_accuracy: np.ndarray  # [L]
    l2: float  # the chosen strength
    outer_l2: np.ndarray  # [K] the strength nested CV chose for each outer fold
    oof_probabilities: np.ndarray  # [N, C] nested out-of-fold predictions
    fitted: tuple[LinearClassifier, ...]  # [L] fitted on every row, one per strength

    def classifier(self, l2: float | None = None) -> LinearClassifier:
        """The all-rows classifier of the chosen strength (or of ``l2``, which must be tried)."""
        l2 = self.l2 if l2 is None else l2
        matches = [i for i, v in enumerate(self.l2_grid) if np.isclose(v, l2, rtol=1e-6)]
        if not matches:
            raise ValueError(f"L2 {l2} was not cross-validated (grid {self.l2_grid})")
        return self.fitted[matches[0]]

    def table(self) -> list[dict[str, float]]:
        return [
            {"l2": l2, "cv_balanced_log_loss": float(loss), "cv_balanced_accuracy": float(acc)}
            for l2, loss, acc in zip(
                self.l2_grid, self.cv_loss, self.cv_balanced_accuracy, strict=True
            )
        ]


def balanced_log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present of each class's mean negative log likelihood."""
    labels = np.asarray(labels, np.int64)
    nll = -np.log(np.clip(probs[np.arange(labels.size), labels], 1e-12, 1.0))
    return float(np.mean([nll[labels == c].mean() for c in np.unique(labels)]))


def balanced_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-class recall over the classes present."""
    labels = np.asarray(labels, np.int64)
    predicted = np.argmax(probs, axis=1)
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


@dataclasses.dataclass(frozen=True)
class _RowSpace:
    """Standardisation of the fitted rows, then their row space: ``z = ((x - mean) / std) V``.

    With an L2 penalty the optimal kernel lies in the span of the (standardised) fitted rows
    (representer theorem), and ``|V b| = |b|``, so fitting ``b`` on ``z`` is exact and costs
    ``rank / D`` of the full problem: a few hundred images with 1,280 features are solved in a
    space of a few hundred dimensions. Spare columns of ``V`` are zero (their weights stay 0).
    """

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    basis: np.ndarray  # [D, rank]

    def project(self, features: np.ndarray) -> np.ndarray:
        return (((features - self.mean) / self.std) @ self.basis).astype(np.float32)

    def classifier(self, kernel: np.ndarray, bias: np.ndarray) -> LinearClassifier:
        raw = (self.basis @ kernel) / self.std[:, None]
        return LinearClassifier(raw, bias - self.mean @ raw)


def _row_space(features: np.ndarray, rows: np.ndarray, rank: int) -> _RowSpace:
    fitted = features[rows].astype(np.float64)
    mean, std = fitted.mean(axis=0), fitted.std(axis=0)
    std = np.where(std > 1e-6 * max(float(std.max()), 1e-12), std, 1.0)
    dims = features.shape[1]
    if len(fitted) >= dims:  # as many rows as features: nothing to gain
        return _RowSpace(mean, std, np.eye(dims, rank))
    standardized = (fitted - mean) / std
    # Right singular vectors from the small Gram matrix: X X^T = U S^2 U^T, V = X^T U / S.
    eigenvalues, u = np.linalg.eigh(standardized @ standardized.T)
    keep = eigenvalues > 1e-9 * max(float(eigenvalues.max(initial=0.0)), 1e-12)
    vectors = standardized.T @ u[:, keep] / np.sqrt(eigenvalues[keep])
    basis = np.zeros((dims, rank))
    basis[:, : vectors.shape[1]] = vectors
    return _RowSpace(mean, std, basis)


def _penalised_loss(
    theta: np.ndarray, z: np.ndarray, onehot: np.ndarray, w: np.ndarray, l2: float
) -> tuple[float, np.ndarray]:
    """Weighted cross-entropy + l2/2 |W|^2 and its gradient; ``theta`` = (W [D, C], b [C])."""
    d, c = z.shape[1], onehot.shape[1]
    kernel, bias = theta[: d * c].reshape(d, c), theta[d * c :]
    logits = z @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = -np.sum(w * np.sum(onehot * log_probs, axis=1)) + 0.5 * l2 * np.sum(kernel**2)
    residual = w[:, None] * (np.exp(log_probs) - onehot)
    grad = np.concatenate([(z.T @ residual + l2 * kernel).ravel(), residual.sum(axis=0)])
    return float(loss), grad


def fit_probes(
    features: np.ndarray,
    labels: np.ndarray,
    row_sets: Sequence[np.ndarray],
    l2s: Sequence[float],
    *,
    num_classes: int,
    balanced: bool,
    tol: float = 1e-6,
) -> list[list[LinearClassifier]]:
    """``out[p][l]``: the classifier fitted on the rows where ``row_sets[p]`` is True with
    strength ``l2s[l]`` (L-BFGS in float64; strengths solved from the largest down, each
    started from the previous solution, which is where the next one lies)."""
    features = np.asarray(features, np.float64)
    onehot = np.eye(num_classes)[np.asarray(labels, np.int64)]
    # Small solves: one BLAS thread (threads only spin, ~15x slower on a busy host); large
    # ones (tens of thousands of images) keep every core.
    small = features.shape[0] * min(features.shape) <= SMALL_PROBLEM
    with threadpool_limits(limits=1 if small else None, user_api="blas"):
        return [
            _fit_row_set(features, onehot, rows, l2s, balanced=balanced, tol=tol)
            for rows in row_sets
        ]


def _fit_row_set(
    features: np.ndarray,
    onehot: np.ndarray,
    rows: np.ndarray,
    l2s: Sequence[float],
    *,
    balanced: bool,
    tol: float,
) -> list[LinearClassifier]:
    rows = np.asarray(rows, bool)
    rank, num_classes = min(features.shape), onehot.shape[1]
    basis = _row_space(features, rows, rank)
    z = basis.project(features[rows]).astype(np.float64)
    counts = onehot[rows].sum(axis=0)
    per_class = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    w = onehot[rows] @ per_class if balanced else np.ones(int(rows.sum()))
    w = w / w.sum()
    theta = np.zeros(rank * num_classes + num_classes)
    fits: dict[int, LinearClassifier] = {}
    for i in np.argsort(l2s)[::-1]:  # largest first, each warm-starting the next
        theta = scipy.optimize.minimize(
            _penalised_loss,
            theta,
            args=(z, onehot[rows], w, float(l2s[i])),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 2000, "gtol": tol},
        ).x
        kernel = theta[: rank * num_classes].reshape(rank, num_classes)
        fits[int(i)] = basis.classifier(kernel, theta[rank * num_classes :])
    return [fits[i] for i in range(len(l2s))]


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    *,
    num_classes: int,
    balanced: bool,
    select: str = "balanced_log_loss",
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
) -> ProbeCV:
    """Choose the L2 strength on ``folds`` and estimate the result by nested CV.

    ``select``: ``"balanced_log_loss"`` (lowest) or ``"balanced_accuracy"`` (highest, ties
    broken by the lower log loss).

    For every ordered pair of folds (held-out ``a``, fitted on all but ``a`` and ``b``) the
    probabilities of ``a`` are kept per strength: pairs with the same ``b`` form the inner CV
    of outer fold ``b``; fits on all but ``a`` alone give the plain CV that picks the run's
    strength. ``k * k`` fits in all, each over the whole grid.
    """
    labels = np.asarray(labels, np.int64)
    folds = np.asarray(folds)
    ids = [int(f) for f in np.unique(folds)]
    n, grid = labels.size, tuple(float(v) for v in l2_grid)
    if select not in ("balanced_log_loss", "balanced_accuracy"):
        raise ValueError(f"unknown probe selection {select!r}")

    # Every fit at once: all-but-a (plain CV), and all-but-{a, b} (inner CV of outer fold b).
    # The run's own classifier (all rows, every strength) rides along: one compiled solve.
    excluded = [()] + [(a,) for a in ids] + [(a, b) for b in ids for a in ids if a != b]
    fits = fit_probes(
        features,
        labels,
        [~np.isin(folds, e) for e in excluded],
        grid,
        num_classes=num_classes,
        balanced=balanced,
    )
    held_out = {
        e: np.stack([fit.probabilities(features) for fit in per_l2])  # [L, N, C]
        for e, per_l2 in zip(excluded[1:], fits[1:], strict=True)
    }

    def best(probs: np.ndarray, rows: np.ndarray) -> int:
        losses = [balanced_log_loss(p[rows], labels[rows]) for p in probs]
        if select == "balanced_log_loss":
            return int(np.argmin(losses))
        accuracy = [balanced_accuracy(p[rows], labels[rows]) for p in probs]
        return min(range(len(grid)), key=lambda i: (-round(accuracy[i], 9), losses[i]))

    plain = np.zeros((len(grid), n, num_classes))
    for a in ids:
        plain[:, folds == a] = held_out[(a,)][:, folds == a]
    cv_loss = np.array([balanced_log_loss(p, labels) for p in plain])
    cv_acc = np.array([balanced_accuracy(p, labels) for p in plain])
    chosen = best(plain, np.ones(n, bool))

    oof = np.zeros((n, num_classes))
    outer_l2 = np.zeros(len(ids))
    for j, b in enumerate(ids):
        inner = folds != b
        inner_probs = np.zeros((len(grid), n, num_classes))
        for a in ids:
            if a != b:
                inner_probs[:, folds == a] = held_out[(a, b)][:, folds == a]
        pick = best(inner_probs, inner)
        outer_l2[j] = grid[pick]
        oof[folds == b] = plain[pick][folds == b]
    return ProbeCV(grid, folds, cv_loss, cv_acc, grid[chosen], outer_l2, oof, tuple(fits[0]))
