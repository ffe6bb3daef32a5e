"""engine.evaluation.metrics against hand-computed cases and brute-force definitions."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from data_pipelines.datasets import declared_tasks
from engine.evaluation import metrics

OCT = ("CNV", "DME", "DRUSEN", "NORMAL")
OCT_TASKS = declared_tasks("oct")


def brute_force_auc(is_pos, scores):
    pos, neg = scores[is_pos], scores[~is_pos]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def one_hot_probs(predictions, num_classes, hit=0.7):
    """Probabilities with ``hit`` on the predicted class, the rest shared equally."""
    probs = np.full((len(predictions), num_classes), (1.0 - hit) / (num_classes - 1))
    probs[np.arange(len(predictions)), predictions] = hit
    return probs


class TestRocAuc:
    def test_hand_computed(self):
        # positives 0.9, 0.4 ; negatives 0.5, 0.1 -> 3 of 4 pairs ordered
        assert metrics.roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1])) == 0.75

    def test_ties_count_half(self):
        # positive 0.5 vs negatives 0.5 (tie, 1/2) and 0.2 (win) -> 1.5 / 2
        assert metrics.roc_auc(np.array([1, 0, 0]), np.array([0.5, 0.5, 0.2])) == 0.75
        assert metrics.roc_auc(np.array([1, 0, 1, 0]), np.full(4, 0.3)) == 0.5

    def test_matches_pairwise_definition_with_many_ties(self):
        rng = np.random.default_rng(0)
        is_pos = rng.random(60) < 0.4
        scores = rng.integers(0, 5, 60).astype(float)  # heavy ties
        assert metrics.roc_auc(is_pos, scores) == pytest.approx(brute_force_auc(is_pos, scores))

    def test_undefined_without_both_groups(self):
        assert np.isnan(metrics.roc_auc(np.ones(3, bool), np.arange(3.0)))

    def test_curve_area_equals_rank_auc(self):
        rng = np.random.default_rng(1)
        is_pos = rng.random(80) < 0.5
        scores = np.round(rng.random(80) + 0.5 * is_pos, 1)  # ties inside the curve
        fpr, tpr, thr = metrics.roc_curve(is_pos, scores)
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thr) < 0)
        area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
        assert area == pytest.approx(metrics.roc_auc(is_pos, scores))

    def test_curve_points_hand_computed(self):
        fpr, tpr, thr = metrics.roc_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.4, 0.1]))
        np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
        np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
        np.testing.assert_allclose(thr, [np.inf, 0.9, 0.8, 0.4, 0.1])


def test_confusion_and_per_class_rates_hand_computed():
    labels = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 1, 0, 1, 2, 2])
    cm = metrics.confusion_matrix(labels, preds, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    sens, spec = metrics.per_class_rates(cm)
    np.testing.assert_allclose(sens, [2 / 3, 1 / 2, 1])
    # class 0: negatives = 3 images of classes 1, 2, none called 0;
    # class 1: 4 negatives, 1 called 1
    np.testing.assert_allclose(spec, [1, 3 / 4, 4 / 5])


def test_penalty_matrix_is_the_papers():
    p = metrics.oct_penalty_matrix(OCT)
    expected = np.array(
        [
            [0, 1, 2, 4],  # CNV called DME 1, DRUSEN 2, NORMAL 4
            [1, 0, 2, 4],  # DME
            [1, 1, 0, 1],  # DRUSEN: any error 1
            [1, 1, 1, 0],  # NORMAL
        ]
    )
    np.testing.assert_array_equal(p, expected)
    with pytest.raises(ValueError, match="CNV"):
        metrics.oct_penalty_matrix(("NORMAL", "PNEUMONIA"))


# 8 OCT images: (true, predicted) with penalties 0, 4, 2, 1, 1, 0, 1, 0 -> weighted error 9/8
OCT_LABELS = np.array([0, 0, 1, 1, 2, 3, 3, 2])
OCT_PREDS = np.array([0, 3, 2, 0, 3, 3, 1, 2])


def test_oct_metrics_hand_computed():
    m = metrics.compute_metrics(one_hot_probs(OCT_PREDS, 4), OCT_LABELS, OCT, OCT_TASKS)
    assert m["accuracy"] == 3 / 8
    assert m["weighted_error"] == 9 / 8
    # urgent = CNV/DME: true urgent 4, of which 2 predicted urgent; 3 of 4 others not urgent
    assert m["urgent_referral/sensitivity"] == 0.5
    assert m["urgent_referral/specificity"] == 0.75
    assert m["urgent_referral/accuracy"] == 5 / 8
    # scores P(CNV)+P(DME): 0.8 when an urgent class was predicted, else 0.2;
    # positives 0.8,0.2,0.2,0.8 vs negatives 0.2,0.2,0.8,0.2 -> (2*3.5 + 2*1.5) / 16
    assert m["urgent_referral/auc"] == pytest.approx(10 / 16)
    assert m["per_class/CNV/sensitivity"] == 0.5
    assert m["per_class/NORMAL/specificity"] == 4 / 6  # CNV and DRUSEN images called NORMAL


def test_oct_metrics_do_not_depend_on_class_order_or_case():
    perm = np.array([3, 2, 1, 0])  # new index of each old class
    names = tuple(OCT[i].lower() for i in np.argsort(perm))
    probs = one_hot_probs(OCT_PREDS, 4)[:, np.argsort(perm)]
    m = metrics.compute_metrics(probs, perm[OCT_LABELS], names, OCT_TASKS)
    assert m["weighted_error"] == 9 / 8
    assert m["urgent_referral/sensitivity"] == 0.5
    assert m["urgent_referral/auc"] == pytest.approx(10 / 16)
    assert metrics.referral_decisions(names, perm[OCT_PREDS]) == [
        "urgent",
        "observation",
        "routine",
        "urgent",
        "observation",
        "observation",
        "urgent",
        "routine",
    ]


def test_chest_binary_and_three_class_tasks():
    chest = declared_tasks("chest_xray")
    assert [t.name for t in metrics.binary_tasks(("NORMAL", "PNEUMONIA"), chest)] == [
        "pneumonia_vs_normal"
    ]
    pathogen = declared_tasks("chest_xray_pathogen")
    assert [t.name for t in metrics.binary_tasks(("BACTERIAL", "VIRAL"), pathogen)] == [
        "bacterial_vs_viral"
    ]
    tasks = declared_tasks("chest_xray_3class")
    names = ("NORMAL", "BACTERIAL", "VIRAL")
    assert [t.name for t in metrics.binary_tasks(names, tasks)] == [
        "pneumonia_vs_normal",
        "bacterial_vs_viral",
    ]
    probs = np.array(
        [
            [0.8, 0.1, 0.1],  # normal, right
            [0.2, 0.5, 0.3],  # bacteria, right
            [0.1, 0.3, 0.6],  # bacteria called virus: pneumonia right, pathogen wrong
            [0.6, 0.1, 0.3],  # virus called normal: pneumonia wrong; pathogen (b vs v) right
        ]
    )
    labels = np.array([0, 1, 1, 2])
    m = metrics.compute_metrics(probs, labels, names, tasks)
    assert m["pneumonia_vs_normal/sensitivity"] == 2 / 3
    assert m["pneumonia_vs_normal/specificity"] == 1.0
    # bacterial vs viral only on the 3 pneumonia images; score P(b) / (P(b) + P(v))
    assert m["bacterial_vs_viral/accuracy"] == 2 / 3
    assert m["bacterial_vs_viral/sensitivity"] == 0.5
    assert m["bacterial_vs_viral/specificity"] == 1.0
    # bacterial scores 5/8, 1/3 ; viral 1/4 -> both above: AUC 1
    assert m["bacterial_vs_viral/auc"] == 1.0


def test_tasks_are_the_declared_ones_never_guessed_from_class_names():
    """A plain folder declares nothing: OCT-looking names get no urgent referral there."""
    assert declared_tasks("folder") == ()
    assert metrics.binary_tasks(OCT) == []
    assert "urgent_referral/auc" not in metrics.compute_metrics(np.eye(4), np.arange(4), OCT)
    # A two-class model always answers its one question: label 1 vs label 0, named as such.
    (task,) = metrics.binary_tasks(("bacteria", "virus"))
    assert (task.name, task.positive, task.negative) == ("virus_vs_bacteria", (1,), (0,))
    # The paper's two-class OCT models: "X vs normal" only for a model of exactly X and NORMAL.
    assert [t.name for t in metrics.binary_tasks(("NORMAL", "DME"), OCT_TASKS)] == ["dme_vs_normal"]
    assert [t.name for t in metrics.binary_tasks(OCT, OCT_TASKS)] == ["urgent_referral"]
    assert metrics.binary_tasks(("CNV", "DME", "NORMAL"), OCT_TASKS) == []
    (other,) = metrics.binary_tasks(("CNV", "DRUSEN"), OCT_TASKS)
    assert (other.name, other.positive) == ("drusen_vs_cnv", (1,))
    (viral,) = metrics.binary_tasks(("NORMAL", "VIRAL"), declared_tasks("chest_xray_3class"))
    assert (viral.name, viral.positive, viral.positive_label) == ("viral_vs_normal", (1,), "viral")
    assert [t.name for t in metrics.binary_tasks(OCT, declared_tasks("synthetic"))] == [
        "urgent_referral"
    ]


def test_generic_folder_classes_get_one_vs_rest():
    names = ("a", "b", "c")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 50)
    probs = rng.dirichlet(np.ones(3), 50)
    m = metrics.compute_metrics(probs, labels, names)
    assert "weighted_error" not in m and not metrics.binary_tasks(names)
    for c, name in enumerate(names):
        assert m[f"per_class/{name}/auc"] == pytest.approx(
            brute_force_auc(labels == c, probs[:, c])
        )
    with pytest.raises(ValueError, match="do not match"):
        metrics.compute_metrics(probs[:, :2], labels, names)


class TestBootstrap:
    PATIENTS = ("p1", "p1", "p2", "p3", "p3", "p3", "p4")

    def test_resamples_whole_patients(self):
        groups = metrics.patient_groups(self.PATIENTS)
        assert [g.tolist() for g in groups] == [[0, 1], [2], [3, 4, 5], [6]]
        for idx in metrics.bootstrap_indices(self.PATIENTS, 50, seed=3):
            counts = np.bincount(idx, minlength=7)
            for g in groups:  # all images of a patient drawn the same number of times
                assert len(set(counts[g])) == 1

    def test_seeded(self):
        a = metrics.bootstrap_indices(self.PATIENTS, 5, seed=1)
        b = metrics.bootstrap_indices(self.PATIENTS, 5, seed=1)
        c = metrics.bootstrap_indices(self.PATIENTS, 5, seed=2)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not all(np.array_equal(x, y) for x, y in zip(a, c))

    def test_copies_of_a_patients_images_do_not_narrow_the_interval(self):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, 40)
        probs = one_hot_probs(np.where(rng.random(40) < 0.8, labels, 1 - labels), 2)
        patients = [f"p{i}" for i in range(40)]
        single = metrics.evaluate(probs, labels, patients, ("NORMAL", "PNEUMONIA"), n_resamples=200)
        repeated = metrics.evaluate(
            np.repeat(probs, 5, 0),
            np.repeat(labels, 5),
            np.repeat(patients, 5),
            ("NORMAL", "PNEUMONIA"),
            n_resamples=200,
        )
        assert repeated.ci95["accuracy"] == single.ci95["accuracy"]
        lo, hi = single.ci95["accuracy"]
        assert lo < single.metrics["accuracy"] < hi and hi - lo > 0.1
        assert repeated.n_images == 200 and repeated.n_patients == 40

    def test_perfect_classifier_has_degenerate_interval_and_json_output(self):
        labels = np.tile(np.arange(4), 10)
        ev = metrics.evaluate(
            one_hot_probs(labels, 4),
            labels,
            [str(i // 2) for i in range(40)],
            OCT,
            tasks=OCT_TASKS,
            n_resamples=100,
        )
        assert ev.ci95["accuracy"] == (1.0, 1.0) and ev.metrics["weighted_error"] == 0.0
        doc = json.loads(json.dumps(ev.to_json()))
        assert doc["metrics"]["urgent_referral/auc"] == {"value": 1.0, "ci95": [1.0, 1.0]}
        assert doc["confusion_matrix"]["counts"] == (np.eye(4, dtype=int) * 10).tolist()
        assert doc["n_patients"] == 20 and set(ev.roc) >= {"urgent_referral", "per_class/CNV"}


def test_balanced_accuracy_and_never_predicted_classes():
    """A classifier that ignores the rare classes: high accuracy, low balanced accuracy, named."""
    labels = np.array([0] * 8 + [3] * 8 + [1, 2])
    preds = np.array([0] * 8 + [3] * 8 + [0, 3])
    m = metrics.compute_metrics(one_hot_probs(preds, 4), labels, OCT)
    assert m["accuracy"] == 16 / 18
    assert m["balanced_accuracy"] == pytest.approx((1 + 0 + 0 + 1) / 4)
    confusion = metrics.confusion_matrix(labels, preds, 4)
    assert metrics.never_predicted(confusion, OCT) == ["DME", "DRUSEN"]
    # A class absent from the labels is not "ignored".
    assert metrics.never_predicted(confusion[:, :][[0, 3]][:, [0, 3]], ["CNV", "NORMAL"]) == []
