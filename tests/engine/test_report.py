"""engine.reports.classification and engine.reports.svg: the files a person and a machine read after evaluation."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from data_pipelines.datasets import declared_tasks
from engine.evaluation import metrics
from engine.reports import classification as report
from engine.reports import svg

OCT = ("CNV", "DME", "DRUSEN", "NORMAL")


@pytest.fixture(scope="module")
def oct_evaluation():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    logits = rng.normal(size=(40, 4)) + 2.5 * np.eye(4)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    patients = [f"P{i // 2}" for i in range(40)]
    ev = metrics.evaluate(probs, labels, patients, OCT, tasks=declared_tasks("oct"), n_resamples=50)
    return ev, probs, labels, patients


def test_paper_rows_follow_the_class_set(oct_evaluation):
    ev, *_ = oct_evaluation
    assert report.paper_rows(ev)[0].model.startswith("paper, full model")
    chest = metrics.evaluate(
        np.array([[0.8, 0.2], [0.3, 0.7]]),
        np.array([0, 1]),
        ["a", "b"],
        ("NORMAL", "PNEUMONIA"),
        tasks=declared_tasks("chest_xray"),
        n_resamples=5,
    )
    (row,) = report.paper_rows(chest)
    assert row.task == "pneumonia_vs_normal" and row.values["auc"] == 0.968
    for key in ("accuracy", "sensitivity", "specificity", "auc"):
        assert f"pneumonia_vs_normal/{key}" in chest.metrics  # every paper key has our counterpart
    for row in report.PAPER["oct"]:
        assert set(row.values) <= set(ev.metrics)


def test_report_files(tmp_path, oct_evaluation):
    ev, probs, labels, patients = oct_evaluation
    paths = [f"test/{OCT[y]}/{OCT[y]}-{p}-1.jpeg" for y, p in zip(labels, patients)]
    rows = report.prediction_rows(paths, patients, labels, probs, OCT)
    provenance = {"model": "small_cnn", "dataset": "synthetic", "git_commit": "abc"}
    out = report.write_report(tmp_path, ev, provenance, rows)

    doc = json.loads(out["json"].read_text())
    assert doc["provenance"] == provenance and doc["n_images"] == 40 and doc["n_patients"] == 20
    assert doc["metrics"]["weighted_error"]["value"] == pytest.approx(
        ev.metrics["weighted_error"], abs=1e-6
    )
    lo, hi = doc["metrics"]["urgent_referral/auc"]["ci95"]
    assert lo <= doc["metrics"]["urgent_referral/auc"]["value"] <= hi
    assert doc["paper"]["experts_weighted_error"]["mean"] == 0.048
    assert len(doc["roc"]["urgent_referral"]["fpr"]) == len(doc["roc"]["urgent_referral"]["tpr"])

    with open(out["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 40
    assert list(table[0]) == [
        "path",
        "patient",
        "label",
        "prediction",
        "p_CNV",
        "p_DME",
        "p_DRUSEN",
        "p_NORMAL",
        "referral",
    ]
    for row, p in zip(table, probs):
        assert row["prediction"] == OCT[int(np.argmax(p))]
        assert (
            row["referral"]
            == {"CNV": "urgent", "DME": "urgent", "DRUSEN": "routine", "NORMAL": "observation"}[
                row["prediction"]
            ]
        )
        assert sum(float(row[f"p_{c}"]) for c in OCT) == pytest.approx(1.0, abs=1e-5)

    page = out["html"].read_text()
    for needle in ("paper, full model", "97.8%", "weighted_error", "ours at arg-max", "experts"):
        assert needle in page
    for block in re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL):
        ET.fromstring(block)  # every chart is well-formed XML


def test_roc_svg_places_points_where_they_belong():
    chart = svg.roc_svg(
        "t",
        [svg.RocSeries("s", np.array([0, 0, 1.0]), np.array([0, 1.0, 1]))],
        [svg.RocMarker("m", 0.5, 0.5)],
        size=260,
    )  # 200-px plot square from (48, 28)
    root = ET.fromstring(chart)
    ns = "{http://www.w3.org/2000/svg}"
    points = root.find(f"{ns}polyline[@stroke='{svg.PALETTE[0]}']").get("points").split()
    assert points == ["48.0,228.0", "48.0,28.0", "248.0,28.0"]
    circle = root.find(f"{ns}circle")
    assert (float(circle.get("cx")), float(circle.get("cy"))) == (148.0, 128.0)


def test_confusion_svg_shows_every_count():
    counts = np.array([[5, 1], [0, 7]])
    texts = [
        t.text
        for t in ET.fromstring(svg.confusion_svg(counts, ["a", "b"])).iter()
        if t.tag.endswith("text")
    ]
    for value in ("5", "1", "0", "7", "83.3%", "100.0%"):
        assert value in texts


def test_write_csv_fixed_columns_keep_the_header_of_an_empty_table(tmp_path):
    from engine.reports.classification import write_csv

    columns = ("path", "rank", "class_index", "class_name", "probability")
    empty = write_csv(tmp_path / "e.csv", [], columns=columns)
    assert empty.read_text().splitlines() == [",".join(columns)]
    row = dict(zip(columns, ("a.png", 1, 3, "cat", "0.5")))
    lines = write_csv(tmp_path / "r.csv", [row], columns=columns).read_text().splitlines()
    assert lines == [",".join(columns), "a.png,1,3,cat,0.5"]


def test_report_leads_with_balanced_metrics_and_warns_of_ignored_classes(tmp_path):
    labels = np.repeat(np.arange(4), 5)
    probs = np.eye(4)[np.where(labels == 2, 0, labels)] * 0.9 + 0.025  # DRUSEN never predicted
    ev = metrics.evaluate(
        probs,
        labels,
        [f"P{i}" for i in range(20)],
        OCT,
        tasks=declared_tasks("oct"),
        n_resamples=20,
    )
    paths = report.write_report(tmp_path, ev, {"split": "test"}, [])
    doc = json.loads(paths["json"].read_text())
    assert doc["warnings"] == ["class DRUSEN is never predicted: the classifier ignores it"]
    assert doc["metrics"]["balanced_accuracy"]["value"] == pytest.approx(0.75)
    page = paths["html"].read_text()
    assert page.index("Balanced accuracy and per-class recall") < page.index("Confusion matrix")
    assert "DRUSEN is never predicted" in page and "DRUSEN recall" in page
