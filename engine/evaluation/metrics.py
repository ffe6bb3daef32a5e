"""The paper's evaluation metrics (Kermany et al. 2018), pure numpy, with patient-level bootstrap
CIs.

Everything here works on host arrays of predicted probabilities ``[N, C]``, integer labels
``[N]`` and patient ids ``[N]``; nothing depends on JAX, so the training loop (validation
metric for "best"), ``launch.evaluate`` and the tests share one implementation.

Definitions (../shared/docs/ANCHORS.md):
- Sensitivity / specificity of a class: one-vs-rest recall of that class and of the rest.
- Urgent referral (OCT): CNV or DME -> "urgent", DRUSEN -> "routine", NORMAL -> "observation".
  The decision is "urgent" when the predicted class (argmax) is CNV or DME; its ROC AUC uses
  the score P(CNV) + P(DME). The paper's headline sensitivity/specificity are this decision's.
- Weighted error: mean penalty per image; urgent called NORMAL = 4, urgent called DRUSEN = 2,
  any other error = 1, correct = 0.
- Binary tasks (urgent referral, chest X-ray pneumonia vs normal, bacterial vs viral, the
  paper's "X vs NORMAL" models), declared by each data set (``data_pipelines.datasets``):
  score = P(positive classes) / P(positive + negative classes); decision = the arg-max over the
  task's classes; images whose true class is in neither group are left out of that task
  (bacterial vs viral on a 3-class chest model uses only the pneumonia images).
- ROC AUC: the Mann-Whitney rank statistic with average ranks, so tied scores count one half.
- 95% CIs: percentile bootstrap, resampling *patients* with replacement (all images of a drawn
  patient enter together), seeded. Replicates in which a metric is undefined (a class absent)
  are skipped for that metric.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from data_pipelines.datasets import OCT_CLASSES, DeclaredTask

URGENT = "urgent"
ROUTINE = "routine"
OBSERVATION = "observation"
OCT_REFERRAL = {"CNV": URGENT, "DME": URGENT, "DRUSEN": ROUTINE, "NORMAL": OBSERVATION}


# ----------------------------------------------------------------------------- basic rates


def roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (ties count 1/2); NaN if a group is empty."""
    is_positive = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(is_positive.sum())
    n_neg = is_positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based mean rank of each tie group
    rank_sum = average_rank[inverse.reshape(-1)][is_positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(
    is_positive: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``: one point per distinct score, from (0, 0) (threshold +inf).

    The point for threshold t counts an image positive when ``score >= t``.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_pos = scores[order], is_positive[order]
    last_of_group = np.r_[np.diff(sorted_scores) != 0, True]
    tp = np.cumsum(sorted_pos)[last_of_group]
    fp = np.cumsum(~sorted_pos)[last_of_group]
    n_pos, n_neg = max(int(is_positive.sum()), 1), max(int((~is_positive).sum()), 1)
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    thresholds = np.r_[np.inf, sorted_scores[last_of_group]]
    return fpr, tpr, thresholds


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` counts, rows = true class, columns = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def per_class_rates(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest ``(sensitivity[C], specificity[C])`` from a confusion matrix (NaN if
    undefined)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    true_pos = np.diag(confusion)
    actual = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    true_neg = total - actual - predicted + true_pos
    sens = np.array([_ratio(tp, a) for tp, a in zip(true_pos, actual)])
    spec = np.array([_ratio(tn, total - a) for tn, a in zip(true_neg, actual)])
    return sens, spec


def binary_rates(is_positive: np.ndarray, predicted_positive: np.ndarray) -> dict[str, float]:
    """Accuracy, sensitivity and specificity of a yes/no decision."""
    is_positive = np.asarray(is_positive, dtype=bool)
    predicted_positive = np.asarray(predicted_positive, dtype=bool)
    tp = np.sum(is_positive & predicted_positive)
    tn = np.sum(~is_positive & ~predicted_positive)
    return {
        "accuracy": _ratio(tp + tn, is_positive.size),
        "sensitivity": _ratio(tp, is_positive.sum()),
        "specificity": _ratio(tn, (~is_positive).sum()),
    }


# ----------------------------------------------------------------------------- paper tasks


def _upper(class_names: Sequence[str]) -> list[str]:
    return [str(name).upper() for name in class_names]


def is_oct(class_names: Sequence[str]) -> bool:
    """True for the paper's four OCT classes (any order, any case)."""
    return sorted(_upper(class_names)) == sorted(OCT_CLASSES)


def oct_penalty_matrix(class_names: Sequence[str]) -> np.ndarray:
    """The paper's ``[C, C]`` penalty (rows true, columns predicted) for the OCT classes."""
    names = _upper(class_names)
    if not is_oct(names):
        raise ValueError(
            f"weighted error needs the classes {OCT_CLASSES}, got {tuple(class_names)}"
        )
    penalty = np.ones((len(names), len(names)))
    np.fill_diagonal(penalty, 0.0)
    for t, true_name in enumerate(names):
        if OCT_REFERRAL[true_name] == URGENT:
            penalty[t, names.index("NORMAL")] = 4.0
            penalty[t, names.index("DRUSEN")] = 2.0
    return penalty


def weighted_error(labels: np.ndarray, predictions: np.ndarray, penalty: np.ndarray) -> float:
    """Mean penalty per image (the paper's weighted error, as a fraction)."""
    labels = np.asarray(labels, dtype=np.int64)
    return (
        float(np.mean(penalty[labels, np.asarray(predictions, dtype=np.int64)]))
        if labels.size
        else float("nan")
    )


def referral_decisions(class_names: Sequence[str], predictions: np.ndarray) -> list[str]:
    """The referral each predicted class implies (OCT); empty strings for other class sets."""
    names = _upper(class_names)
    if not is_oct(names):
        return [""] * len(predictions)
    return [OCT_REFERRAL[names[int(p)]] for p in predictions]


@dataclasses.dataclass(frozen=True)
class BinaryTask:
    """A yes/no question asked of a multi-class model, e.g. urgent referral or pneumonia."""

    name: str
    positive: tuple[int, ...]  # class indices whose probabilities make the score
    negative: tuple[int, ...]
    positive_label: str
    negative_label: str

    def select(self, labels: np.ndarray) -> np.ndarray:
        """Boolean mask of the images this task is asked about (true class in either group)."""
        return np.isin(labels, self.positive + self.negative)

    def scores(self, probs: np.ndarray) -> np.ndarray:
        pos = probs[:, list(self.positive)].sum(axis=1)
        both = pos + probs[:, list(self.negative)].sum(axis=1)
        return pos / np.maximum(both, np.finfo(np.float64).tiny)

    def decisions(self, probs: np.ndarray) -> np.ndarray:
        """Positive when the arg-max over the task's classes is a positive class."""
        classes = np.array(self.positive + self.negative)
        winner = classes[np.argmax(probs[:, classes], axis=1)]
        return np.isin(winner, self.positive)


def binary_tasks(
    class_names: Sequence[str], declared: Sequence[DeclaredTask] = ()
) -> list[BinaryTask]:
    """The yes/no questions a model with these classes answers, as its data set declares them.

    ``declared``: the data set's questions (``data_pipelines.datasets.declared_tasks``); one
    applies when the model has every class it names (any case), and with ``alone`` only when
    the model has no other class. A two-class model that no declared question fits answers
    the one question any binary classifier does: its second class (label 1) vs its first.
    """
    names = _upper(class_names)
    idx = {name: i for i, name in enumerate(names)}
    tasks: list[BinaryTask] = []
    for task in declared:
        named = _upper((*task.positive, *task.negative))
        if not all(n in idx for n in named) or (task.alone and len(named) != len(names)):
            continue
        tasks.append(
            BinaryTask(
                task.name,
                tuple(idx[n] for n in _upper(task.positive)),
                tuple(idx[n] for n in _upper(task.negative)),
                task.positive_label,
                task.negative_label,
            )
        )
    if not tasks and len(names) == 2:
        first, second = (str(name).lower() for name in class_names)
        tasks.append(BinaryTask(f"{second}_vs_{first}", (1,), (0,), second, first))
    return tasks


# ----------------------------------------------------------------------------- all metrics


def compute_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    tasks: Sequence[DeclaredTask] = (),
) -> dict[str, float]:
    """Every scalar metric for these predictions, as a flat ``name -> value`` dict.

    Keys: ``accuracy``, ``balanced_accuracy`` (mean recall of the classes present),
    ``per_class/<name>/{sensitivity,specificity,auc}``,
    ``<task>/{accuracy,sensitivity,specificity,auc}`` for each :func:`binary_tasks` entry
    (``tasks``: the data set's declared questions), and
    ``weighted_error`` for OCT. Flat so that the bootstrap can treat every number alike.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = len(class_names)
    if probs.ndim != 2 or probs.shape != (labels.size, num_classes):
        raise ValueError(
            f"probs {probs.shape} do not match {labels.size} labels x {num_classes} classes"
        )
    predictions = np.argmax(probs, axis=1)
    confusion = confusion_matrix(labels, predictions, num_classes)
    out = {"accuracy": _ratio(np.trace(confusion), labels.size)}
    sens, spec = per_class_rates(confusion)
    present = confusion.sum(axis=1) > 0
    out["balanced_accuracy"] = float(np.mean(sens[present])) if present.any() else float("nan")
    for c, name in enumerate(class_names):
        out[f"per_class/{name}/sensitivity"] = float(sens[c])
        out[f"per_class/{name}/specificity"] = float(spec[c])
        out[f"per_class/{name}/auc"] = roc_auc(labels == c, probs[:, c])
    for task in binary_tasks(class_names, tasks):
        keep = task.select(labels)
        is_pos = np.isin(labels[keep], task.positive)
        for key, value in binary_rates(is_pos, task.decisions(probs[keep])).items():
            out[f"{task.name}/{key}"] = value
        out[f"{task.name}/auc"] = roc_auc(is_pos, task.scores(probs[keep]))
    if is_oct(class_names):
        out["weighted_error"] = weighted_error(labels, predictions, oct_penalty_matrix(class_names))
    return out


# ----------------------------------------------------------------------------- bootstrap


def patient_groups(patients: Sequence[Any]) -> list[np.ndarray]:
    """Image indices of each patient, patients in first-seen order."""
    _, first, inverse = np.unique(
        np.asarray(patients, dtype=str), return_index=True, return_inverse=True
    )
    order = np.argsort(first)  # patient ids in the order they first appear
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    patient_of_image = rank[inverse.reshape(-1)]
    by_patient = np.argsort(patient_of_image, kind="stable")
    sizes = np.bincount(patient_of_image, minlength=order.size)
    return np.split(by_patient, np.cumsum(sizes)[:-1]) if order.size else []


def bootstrap_indices(patients: Sequence[Any], n_resamples: int, seed: int) -> list[np.ndarray]:
    """``n_resamples`` index arrays, each the images of patients drawn with replacement."""
    groups = patient_groups(patients)
    sizes = np.array([g.size for g in groups])
    flat = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        drawn = rng.integers(0, len(groups), size=len(groups))
        counts = sizes[drawn]
        offsets = np.repeat(starts[drawn] - np.r_[0, np.cumsum(counts)[:-1]], counts)
        out.append(flat[offsets + np.arange(counts.sum())])
    return out


def bootstrap_ci(
    statistic: Callable[[np.ndarray], Mapping[str, float]],
    patients: Sequence[Any],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile CIs of every value ``statistic(indices)`` returns, resampling patients."""
    samples: dict[str, list[float]] = {}
    for indices in bootstrap_indices(patients, n_resamples, seed):
        for key, value in statistic(indices).items():
            samples.setdefault(key, []).append(value)
    tail = 100.0 * (1.0 - level) / 2.0
    out = {}
    for key, values in samples.items():
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            out[key] = (float("nan"), float("nan"))
        else:
            lo, hi = np.percentile(finite, [tail, 100.0 - tail])
            out[key] = (float(lo), float(hi))
    return out


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Metrics of one set of predictions, with CIs, the confusion matrix and ROC curves."""

    class_names: tuple[str, ...]
    metrics: dict[str, float]
    ci95: dict[str, tuple[float, float]]
    confusion: np.ndarray
    roc: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # task or "per_class/<name>"
    n_images: int
    n_patients: int
    n_resamples: int
    seed: int
    tasks: tuple[BinaryTask, ...] = ()  # the yes/no questions asked (binary_tasks)

    def to_json(self) -> dict[str, Any]:
        """Nested plain-Python form for report.json (ROC curves left to the HTML)."""
        return {
            "class_names": list(self.class_names),
            "n_images": self.n_images,
            "n_patients": self.n_patients,
            "bootstrap": {
                "unit": "patient",
                "resamples": self.n_resamples,
                "seed": self.seed,
                "interval": "95% percentile",
            },
            "metrics": {
                key: {
                    "value": _json_float(value),
                    "ci95": [_json_float(v) for v in self.ci95.get(key, (float("nan"),) * 2)],
                }
                for key, value in self.metrics.items()
            },
            "confusion_matrix": {
                "rows": "true",
                "columns": "predicted",
                "counts": self.confusion.tolist(),
            },
        }


def never_predicted(confusion: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Classes present in the labels that no image was predicted as: a classifier ignoring them."""
    confusion = np.asarray(confusion)
    return [
        name
        for c, name in enumerate(class_names)
        if confusion[c].sum() > 0 and confusion[:, c].sum() == 0
    ]


def _json_float(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)


def evaluate(
    probs: np.ndarray,
    labels: np.ndarray,
    patients: Sequence[Any],
    class_names: Sequence[str],
    *,
    tasks: Sequence[DeclaredTask] = (),
    n_resamples: int = 1000,
    seed: int = 0,
) -> Evaluation:
    """All metrics for one test set, with 95% CIs by bootstrap over patients.

    ``tasks``: the yes/no questions the data set declares (see :func:`binary_tasks`).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(patients) != labels.size:
        raise ValueError(f"{len(patients)} patient ids for {labels.size} images")
    class_names = tuple(class_names)
    metrics = compute_metrics(probs, labels, class_names, tasks)
    ci = bootstrap_ci(
        lambda idx: compute_metrics(probs[idx], labels[idx], class_names, tasks),
        patients,
        n_resamples=n_resamples,
        seed=seed,
    )
    asked = tuple(binary_tasks(class_names, tasks))
    roc = {}
    for task in asked:
        keep = task.select(labels)
        roc[task.name] = roc_curve(np.isin(labels[keep], task.positive), task.scores(probs[keep]))
    for c, name in enumerate(class_names):
        roc[f"per_class/{name}"] = roc_curve(labels == c, probs[:, c])
    return Evaluation(
        class_names=class_names,
        metrics=metrics,
        ci95=ci,
        confusion=confusion_matrix(labels, np.argmax(probs, axis=1), len(class_names)),
        roc=roc,
        n_images=int(labels.size),
        n_patients=len(set(map(str, patients))),
        n_resamples=n_resamples,
        seed=seed,
        tasks=asked,
    )
