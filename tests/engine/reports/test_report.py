"""engine.reports (classification, charts, pages) and the ISL report page: the files a
person and a machine read after evaluation, the same bytes on every run."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time

import matplotlib
import numpy as np
import pytest
from PIL import Image

from data_pipelines.datasets import declared_tasks
from engine import anchors
from engine.evaluation import isl, metrics
from engine.reports import charts, pages
from engine.reports import classification as report
from engine.reports.overlay import GalleryItem, gallery_html
from engine.reports.predictions import prediction_rows
from engine.reports.writers import write_npz

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
    for row in anchors.PAPER["oct"]:
        assert set(row.values) <= set(ev.metrics)


def test_report_files(tmp_path, oct_evaluation):
    ev, probs, labels, patients = oct_evaluation
    paths = [f"test/{OCT[y]}/{OCT[y]}-{p}-1.jpeg" for y, p in zip(labels, patients)]
    rows = prediction_rows(paths, patients, labels, probs, OCT)
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
    embedded = re.findall(r'<a href="([^"]+)"><img src="data:image/png;base64,([^"]+)"', page)
    assert {name for name, _ in embedded} == {
        "weighted_error.png",
        "roc_urgent_referral.png",
        "roc_urgent_referral_zoom.png",
        "roc_per_class.png",
        "confusion.png",
    }
    for name, data in embedded:  # every chart is a readable PNG, the same as the file beside
        png = base64.b64decode(data)
        assert (tmp_path / name).read_bytes() == png
        with Image.open(io.BytesIO(png)) as image:
            image.verify()


def _data_points(axes, line):
    """A line's points in the figure's pixels."""
    return axes.transData.transform(np.column_stack(line.get_data()))


def test_roc_chart_places_points_where_they_belong():
    figure = charts.roc_figure(
        "t",
        [charts.RocSeries("s", np.array([0, 0, 1.0]), np.array([0, 1.0, 1]))],
        [charts.RocMarker("m", 0.5, 0.5)],
    )
    figure.canvas.draw()  # lays the figure out
    (ax,) = figure.axes
    curve = next(line for line in ax.lines if line.get_label() == "s")
    (x0, y0), (x1, y1) = ax.get_window_extent().get_points()
    assert x1 - x0 == pytest.approx(y1 - y0, abs=1)  # a square plot
    corners = _data_points(ax, curve)  # (0,0) bottom left, (0,1) top left, (1,1) top right
    np.testing.assert_allclose(corners, [[x0, y0], [x0, y1], [x1, y1]], atol=0.5)
    marker = next(line for line in ax.lines if line.get_label() == "m")
    np.testing.assert_allclose(_data_points(ax, marker), [[(x0 + x1) / 2, (y0 + y1) / 2]], atol=0.5)


def test_roc_zoom_names_the_markers_outside_it():
    figure = charts.roc_figure(
        "t",
        [charts.RocSeries("s", np.array([0, 0.1, 1.0]), np.array([0, 0.9, 1]))],
        [charts.RocMarker("in", 0.1, 0.9), charts.RocMarker("out", 0.5, 0.5)],
        zoom=0.2,
    )
    (ax,) = figure.axes
    assert ax.get_xlim() == (0.0, 0.2) and ax.get_ylim() == (0.8, 1.0)
    labels = {line.get_label() for line in ax.lines}
    assert {"in", "out (outside the zoomed area)"} <= labels


def test_confusion_chart_shows_every_count():
    counts = np.array([[5, 1], [0, 7]])
    (ax,) = charts.confusion_figure(counts, ["a", "b"]).axes
    texts = [t.get_text() for t in ax.texts]
    for value in ("5", "1", "0", "7", "83.3%", "100.0%"):
        assert value in texts


def test_png_bytes_are_the_same_for_the_same_data_and_differ_for_other_data():
    def draw(tpr):
        return charts.png_bytes(
            charts.roc_figure(
                "t", [charts.RocSeries("s", np.array([0, 0.2, 1.0]), np.array([0, tpr, 1]))]
            )
        )

    first = draw(0.7)
    assert first.startswith(b"\x89PNG") and b"Software" not in first and b"matplotlib" not in first
    assert draw(0.7) == first
    assert draw(0.8) != first
    with matplotlib.rc_context({"font.size": 20, "lines.linewidth": 7, "savefig.dpi": 50}):
        assert draw(0.7) == first  # a user's matplotlibrc changes nothing


def test_report_files_are_byte_identical_across_runs(tmp_path, oct_evaluation):
    """Same evaluation, two output folders: every file, byte for byte (charts included)."""
    ev, probs, labels, patients = oct_evaluation
    paths = [f"test/{OCT[y]}/{OCT[y]}-{p}-1.jpeg" for y, p in zip(labels, patients)]
    rows = prediction_rows(paths, patients, labels, probs, OCT)
    provenance = {"model": "small_cnn", "classes": list(OCT), "git_commit": "abc"}
    for name in ("a", "b"):
        report.write_report(tmp_path / name, ev, provenance, rows)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert {"report.json", "predictions.csv", "report.html", "confusion.png"} <= set(files)
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_pages_escape_what_they_are_given():
    page = gallery_html(
        "<b>t</b>", ["a & b"], [GalleryItem('x"y.png', "<script>", ("<i>",), "hit")]
    )
    assert "<script>" not in page and "&lt;script&gt;" in page and "a &amp; b" in page
    assert 'src="x&#34;y.png"' in page and "<i>" not in page and 'class="card hit"' in page


def test_chart_file_names_are_safe():
    assert pages.chart_file_name("roc_a b/../c") == "roc_a_b_.._c.png"


def test_write_csv_fixed_columns_keep_the_header_of_an_empty_table(tmp_path):
    columns = ("path", "rank", "class_index", "class_name", "probability")
    empty = report.write_csv(tmp_path / "e.csv", [], columns=columns)
    assert empty.read_text().splitlines() == [",".join(columns)]
    row = dict(zip(columns, ("a.png", 1, 3, "cat", "0.5")))
    lines = report.write_csv(tmp_path / "r.csv", [row], columns=columns).read_text().splitlines()
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


class _Wells:
    """Two 8x8 wells, 3 z planes, two labels (the second stained in the first well only)."""

    labels = ("DAPI", "MAP2")

    def __init__(self):
        rng = np.random.default_rng(1)
        self.wells = []
        for i in range(2):
            mask = np.ones((8, 8, 2), np.float32)
            mask[..., 1] = float(i == 0)
            self.wells.append(
                {
                    "image": rng.random((8, 8, 3)).astype(np.float32),
                    "target": rng.random((8, 8, 2)).astype(np.float32),
                    "target_mask": mask,
                    "well": f"w{i}",
                }
            )

    def __len__(self):
        return len(self.wells)

    def __getitem__(self, i):
        return self.wells[i]


def test_isl_report_page_and_scatter_charts_are_byte_identical_across_runs(tmp_path):
    source = _Wells()
    predictions = [np.clip(w["target"] + 0.1, 0, 1) for w in source.wells]
    document = {
        "per_label": {
            "DAPI": {"r": 0.91, "ci_low": 0.8, "ci_high": 0.95, "wells": 2, "pixels": 128},
            "MAP2": {"r": 0.5, "ci_low": None, "ci_high": None, "wells": 1, "pixels": 64},
        },
        "provenance": {"model": "isl_net", "wells": ["w0", "w1"]},
    }
    for name in ("a", "b"):
        isl.write_html(tmp_path / name, document, source, predictions)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["report.html", "scatter_DAPI.png", "scatter_MAP2.png"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    page = (tmp_path / "a" / "report.html").read_text()
    assert page.count('<a href="scatter_') == 2 and "DAPI (r = 0.910)" in page
    assert "MAP2 predicted" in page and page.count("<h3>") == 2  # w1 has no MAP2 panels
    assert page.count("MAP2 predicted</figcaption>") == 1 and "0.8000 - 0.9500" in page


def test_npz_arrays_round_trip_with_fixed_timestamps(tmp_path):
    """heatmaps.npz is byte-identical across runs: no member carries the time it was written."""
    arrays = {"heatmaps": np.arange(12, dtype=np.float32).reshape(3, 4), "labels": np.array([2, 0])}
    first = write_npz(tmp_path / "a.npz", arrays)
    time.sleep(2.1)  # zip timestamps have a 2 s resolution
    second = write_npz(tmp_path / "b.npz", arrays)
    assert first.read_bytes() == second.read_bytes()
    with np.load(first) as loaded:
        assert sorted(loaded.files) == ["heatmaps", "labels"]
        for name, array in arrays.items():
            np.testing.assert_array_equal(loaded[name], array)
            assert loaded[name].dtype == array.dtype
