"""The linear probe fitted the way the representation-learning literature fits one.

Why: a classifier trained by 50 minibatch steps and picked by plain accuracy on a small,
imbalanced set never names the rare classes. A linear probe on cached features is a convex
problem that costs milliseconds per pass, so it is solved outright:

- multinomial logistic regression on standardised features (mean / std of the rows it is fitted
  on), minimised to convergence by full-batch L-BFGS (optax, zoom line search);
- every class weighs the same in the loss when ``class_weights`` says so (balanced weighting);
- the L2 strength is the one with the lowest balanced log loss (mean over classes of each
  class's held-out negative log likelihood) over patient-grouped folds of the training images;
  one fit per strength, all strengths in one vmapped solve;
- nested cross-validation gives an honest estimate: each outer fold's strength is chosen on the
  other folds only, then that fold is predicted by a classifier that never saw its patients;
- the final classifier is fitted on every training image and folded back into the raw feature
  space, so the saved network is the plain backbone plus its usual head.

Every fit runs on the full feature matrix with per-row weights (a held-out row weighs zero), so
one compiled solver serves every fold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

# L2 strengths tried (on standardised features, loss averaged per image).
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


@jax.jit
def _fit_all(x, onehot, weights, l2s, max_iter, tol):
    """L-BFGS minima of weighted cross-entropy + l2/2 |W|^2, for every (row set, l2).

    ``x`` [P, N, D] (each row set standardised on its own rows), ``weights`` [P, N] summing
    to one per row set, ``l2s`` [L]: parameters come back [P, L, ...].
    """
    d, c = x.shape[2], onehot.shape[1]

    def fit(x, weights, l2):
        def loss(params):
            logits = x @ params["kernel"] + params["bias"]
            ce = -jnp.sum(onehot * jax.nn.log_softmax(logits), axis=-1)
            return jnp.sum(weights * ce) + 0.5 * l2 * jnp.sum(params["kernel"] ** 2)

        solver = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(loss)
        params = {"kernel": jnp.zeros((d, c), x.dtype), "bias": jnp.zeros((c,), x.dtype)}

        def not_done(carry):
            _, state, i = carry
            grad = optax.tree_utils.tree_get(state, "grad")
            return (i == 0) | ((i < max_iter) & (optax.tree_utils.tree_norm(grad) >= tol))

        def iterate(carry):
            params, state, i = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = solver.update(
                grad, state, params, value=value, grad=grad, value_fn=loss
            )
            return optax.apply_updates(params, updates), state, i + 1

        params, _, _ = jax.lax.while_loop(not_done, iterate, (params, solver.init(params), 0))
        return params

    per_l2 = jax.vmap(fit, in_axes=(None, None, 0))
    return jax.vmap(per_l2, in_axes=(0, 0, None))(x, weights, l2s)


def fit_probes(
    features: np.ndarray,
    labels: np.ndarray,
    row_sets: Sequence[np.ndarray],
    l2s: Sequence[float],
    *,
    num_classes: int,
    balanced: bool,
    max_iter: int = 300,
    tol: float = 1e-4,
    max_elements: int = 1 << 27,
) -> list[list[LinearClassifier]]:
    """``out[p][l]``: the classifier fitted on the rows where ``row_sets[p]`` is True with
    strength ``l2s[l]``. Row sets are solved together, in chunks of at most ``max_elements``
    projected feature values."""
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.int64)
    onehot = jnp.asarray(np.eye(num_classes, dtype=np.float32)[labels])
    rank = min(features.shape)
    chunk = max(1, max_elements // (len(features) * rank))
    out: list[list[LinearClassifier]] = []
    for start in range(0, len(row_sets), chunk):
        bases, xs, weights = [], [], []
        for rows in row_sets[start : start + chunk]:
            rows = np.asarray(rows, bool)
            basis = _row_space(features, rows, rank)
            w = rows.astype(np.float64)
            if balanced:
                counts = np.bincount(labels[rows], minlength=num_classes).astype(np.float64)
                w = w * np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)[labels]
            bases.append(basis)
            xs.append(basis.project(features))
            weights.append(w / w.sum())
        params = _fit_all(
            jnp.asarray(np.stack(xs)),
            onehot,
            jnp.asarray(np.stack(weights), jnp.float32),
            jnp.asarray(l2s, jnp.float32),
            max_iter,
            tol,
        )
        kernels = np.asarray(params["kernel"], np.float64)  # [P, L, rank, C]
        biases = np.asarray(params["bias"], np.float64)
        for basis, kernel_l, bias_l in zip(bases, kernels, biases, strict=True):
            out.append([basis.classifier(k, b) for k, b in zip(kernel_l, bias_l, strict=True)])
    return out


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
