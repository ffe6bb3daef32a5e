"""Evaluation outputs: ``report.json`` (machines), ``predictions.csv`` (one row per image),
``report.html`` (people: ROC curves with the paper's operating points, confusion matrix, our
numbers beside the paper's) and its charts as PNG files beside it.

The paper's numbers come from :mod:`engine.anchors`; each row names the metric key of
:func:`engine.evaluation.metrics.compute_metrics` it is compared with. The experts'
sensitivity/specificity points of the paper's Figure 3 are not published in ANCHORS.md, so their
*weighted-error range* (0.4%-10.5%, mean 4.8%) is drawn instead.

Every file is a function of the evaluation and the provenance only (no dates, no object ids,
charts drawn by :mod:`engine.reports.charts` with fixed settings): two runs of the same
evaluation write the same bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.anchors import EXPERT_WEIGHTED_ERROR, PAPER, SOURCE, PaperRow
from engine.evaluation import metrics
from engine.reports import charts
from engine.reports.pages import ChartImage, chart_file_name, render
from engine.reports.writers import write_csv, write_json, write_text  # callers use report.write_*


def paper_rows(evaluation: metrics.Evaluation) -> list[PaperRow]:
    """The published rows comparable with this evaluation's class set."""
    rows = list(PAPER["oct"]) if metrics.is_oct(evaluation.class_names) else []
    for task in evaluation.tasks:
        rows += PAPER.get(task.name, [])
    return rows


def _key(row: PaperRow, metric: str) -> str:
    return f"{row.task}/{metric}" if row.task else metric


# ----------------------------------------------------------------------------- CSV


# ----------------------------------------------------------------------------- JSON


def report_document(evaluation: metrics.Evaluation, provenance: dict[str, Any]) -> dict[str, Any]:
    """report.json: provenance, every metric with its CI, confusion matrix, ROC points, the paper.

    No creation time: the same evaluation gives the same file (the run's log has the times)."""
    doc: dict[str, Any] = {"provenance": provenance}
    doc["warnings"] = headline_warnings(evaluation)
    doc.update(evaluation.to_json())
    doc["roc"] = {
        name: {
            "fpr": np.round(fpr, 6).tolist(),
            "tpr": np.round(tpr, 6).tolist(),
            "thresholds": [None if not np.isfinite(t) else round(float(t), 6) for t in thr],
        }
        for name, (fpr, tpr, thr) in evaluation.roc.items()
    }
    doc["paper"] = {
        "source": SOURCE,
        "rows": [
            {"model": r.model, "metrics": {_key(r, k): v for k, v in r.values.items()}}
            for r in paper_rows(evaluation)
        ],
    }
    if metrics.is_oct(evaluation.class_names):
        doc["paper"]["experts_weighted_error"] = dict(EXPERT_WEIGHTED_ERROR)
    return doc


# ----------------------------------------------------------------------------- HTML


def _pct(value: float | None) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One of our numbers as the page shows it: the value and, when known, its 95% CI."""

    value: str
    ci: str = ""  # "lo–hi", empty when there is no interval


def _ours(evaluation: metrics.Evaluation, key: str) -> Cell:
    value = evaluation.metrics.get(key, float("nan"))
    lo, hi = evaluation.ci95.get(key, (float("nan"), float("nan")))
    return Cell(_pct(value), f"{_pct(lo)}–{_pct(hi)}" if np.isfinite(lo) else "")


def _comparison(evaluation: metrics.Evaluation) -> dict[str, Any] | None:
    """Our numbers beside each comparable published model's, one row per metric key."""
    rows = paper_rows(evaluation)
    if not rows:
        return None
    published = [{_key(r, k): v for k, v in r.values.items()} for r in rows]
    keys = list(dict.fromkeys(key for values in published for key in values))
    return {
        "models": [r.model for r in rows],
        "rows": [
            (key, _ours(evaluation, key), [_pct(values.get(key)) for values in published])
            for key in keys
        ],
        "source": SOURCE,
    }


def headline_keys(evaluation: metrics.Evaluation) -> list[str]:
    """What a report leads with: balanced accuracy, accuracy, then each class's recall."""
    per_class = [f"per_class/{name}/sensitivity" for name in evaluation.class_names]
    return ["balanced_accuracy", "accuracy", *per_class]


def headline_warnings(evaluation: metrics.Evaluation) -> list[str]:
    """Plain-language warnings: classes present in the labels that were never predicted."""
    return [
        f"class {name} is never predicted: the classifier ignores it"
        for name in metrics.never_predicted(evaluation.confusion, evaluation.class_names)
    ]


def _chart(stem: str, title: str, figure: Any, notes: Sequence[str] = ()) -> ChartImage:
    return ChartImage(chart_file_name(stem), title, charts.png_bytes(figure), tuple(notes))


def _roc_charts(evaluation: metrics.Evaluation) -> list[ChartImage]:
    """Per binary task its ROC curve (whole and zoomed) with our arg-max operating point and the
    paper's; then every class against the rest."""
    images = []
    paper = paper_rows(evaluation)
    m = evaluation.metrics
    for task in evaluation.tasks:
        fpr, tpr, _ = evaluation.roc[task.name]
        markers = [
            charts.RocMarker(
                f"ours at arg-max ({_pct(m[task.name + '/sensitivity'])} sens, "
                f"{_pct(m[task.name + '/specificity'])} spec)",
                1 - m[task.name + "/specificity"],
                m[task.name + "/sensitivity"],
            )
        ]
        for row in paper:
            values = {_key(row, k): v for k, v in row.values.items()}
            sens, spec = (
                values.get(f"{task.name}/sensitivity"),
                values.get(f"{task.name}/specificity"),
            )
            if sens is not None and spec is not None:
                markers.append(
                    charts.RocMarker(
                        f"{row.model} ({_pct(sens)} sens, {_pct(spec)} spec)",
                        1 - spec,
                        sens,
                        shape="diamond",
                    )
                )
        series = [charts.RocSeries(f"ours, AUC {_pct(m[task.name + '/auc'])}", fpr, tpr)]
        legend = [s.label for s in series] + [marker.label for marker in markers]
        title = f"{task.name.replace('_', ' ')}: {task.positive_label} vs {task.negative_label}"
        images.append(
            _chart(f"roc_{task.name}", title, charts.roc_figure(title, series, markers), legend)
        )
        zoomed = charts.roc_figure(title + " (zoom)", series, markers, zoom=0.2)
        images.append(_chart(f"roc_{task.name}_zoom", title + " (zoom)", zoomed, legend))
    per_class = [
        charts.RocSeries(
            f"{name} vs rest, AUC {_pct(m[f'per_class/{name}/auc'])}",
            *evaluation.roc[f"per_class/{name}"][:2],
        )
        for name in evaluation.class_names
    ]
    title = "one class vs the rest"
    images.append(
        _chart(
            "roc_per_class",
            title,
            charts.roc_figure(title, per_class),
            [s.label for s in per_class],
        )
    )
    return images


def report_charts(evaluation: metrics.Evaluation) -> dict[str, list[ChartImage]]:
    """Every chart of report.html, by section: ``experts`` (OCT only), ``roc``, ``confusion``."""
    drawn: dict[str, list[ChartImage]] = {"experts": []}
    if "weighted_error" in evaluation.metrics:
        e = EXPERT_WEIGHTED_ERROR
        title = f"weighted error: ours vs the paper's {e['experts']} experts (range, mean line)"
        ours = evaluation.metrics["weighted_error"]
        strip = charts.range_strip_figure(title, ours, e["low"], e["high"], mean=e["mean"])
        experts = f"{_pct(e['low'])}–{_pct(e['high'])}, mean {_pct(e['mean'])}"
        notes = [f"ours {_pct(ours)}; experts {experts}"]
        drawn["experts"].append(_chart("weighted_error", title, strip, notes))
    drawn["roc"] = _roc_charts(evaluation)
    confusion = charts.confusion_figure(evaluation.confusion, evaluation.class_names)
    drawn["confusion"] = [
        _chart("confusion", "confusion matrix (rows true, columns predicted)", confusion)
    ]
    return drawn


def render_html(
    evaluation: metrics.Evaluation,
    provenance: dict[str, Any],
    drawn: dict[str, list[ChartImage]] | None = None,
) -> str:
    """The whole report page (self-contained: charts inline as PNG, CSS inline); ``drawn`` is
    :func:`report_charts`'s result, drawn here when not given."""
    drawn = report_charts(evaluation) if drawn is None else drawn
    headline = [
        (key.replace("/sensitivity", " recall"), _ours(evaluation, key))
        for key in headline_keys(evaluation)
    ]
    return render(
        "report.html.j2",
        provenance=[(str(k), str(v)) for k, v in provenance.items()],
        n_images=evaluation.n_images,
        n_patients=evaluation.n_patients,
        warnings=headline_warnings(evaluation),
        headline=headline,
        comparison=_comparison(evaluation),
        charts=drawn,
        every_metric=[(key, _ours(evaluation, key)) for key in evaluation.metrics],
    )


def write_report(
    out_dir: str | Path,
    evaluation: metrics.Evaluation,
    provenance: dict[str, Any],
    rows: Sequence[dict[str, Any]],
) -> dict[str, Path]:
    """Write report.json, predictions.csv, report.html and its chart PNGs (beside it, e.g.
    ``roc_<task>.png``, ``confusion.png``) into ``out_dir``; returns the paths of the first three
    (``json``, ``csv``, ``html``)."""
    out_dir = Path(out_dir)
    drawn = report_charts(evaluation)
    for section in drawn.values():
        for image in section:
            image.write(out_dir)
    return {
        "json": write_json(out_dir / "report.json", report_document(evaluation, provenance)),
        "csv": write_csv(out_dir / "predictions.csv", rows),
        "html": write_text(out_dir / "report.html", render_html(evaluation, provenance, drawn)),
    }
