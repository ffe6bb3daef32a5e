"""Evaluation outputs: ``report.json`` (machines), ``predictions.csv`` (one row per image) and
``report.html`` (people: ROC curves with the paper's operating points, confusion matrix, our
numbers beside the paper's).

The paper's numbers are copied from ../shared/docs/ANCHORS.md (Kermany et al., Cell 2018) into
:data:`PAPER`; each row names the metric key of :func:`engine.evaluation.metrics.compute_metrics` it is
compared with. The experts' sensitivity/specificity points of the paper's Figure 3 are not in
ANCHORS.md, so their *weighted-error range* (0.4%-10.5%, mean 4.8%) is drawn instead.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.evaluation import metrics
from engine.reports import svg

SOURCE = "Kermany et al., Cell 172(5):1122-1131 (2018)"


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One published model's numbers for one task: metric key -> value (fractions)."""

    task: str  # the metric-key prefix it is compared with, "" for top-level keys
    model: str
    values: dict[str, float]


# Keys are those of engine.evaluation.metrics.compute_metrics; sensitivity/specificity of the OCT models
# are the urgent-referral decision's (ANCHORS.md).
PAPER: dict[str, list[PaperRow]] = {
    "oct": [
        PaperRow(
            "",
            "paper, full model (108,312 images)",
            {
                "accuracy": 0.966,
                "urgent_referral/sensitivity": 0.978,
                "urgent_referral/specificity": 0.974,
                "weighted_error": 0.066,
                "urgent_referral/auc": 0.999,
            },
        ),
        PaperRow(
            "",
            "paper, limited model (1,000 per class)",
            {
                "accuracy": 0.934,
                "urgent_referral/sensitivity": 0.966,
                "urgent_referral/specificity": 0.940,
                "weighted_error": 0.127,
                "urgent_referral/auc": 0.988,
            },
        ),
    ],
    "cnv_vs_normal": [
        PaperRow(
            "cnv_vs_normal",
            "paper, binary CNV vs normal",
            {"accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0, "auc": 1.0},
        )
    ],
    "dme_vs_normal": [
        PaperRow(
            "dme_vs_normal",
            "paper, binary DME vs normal",
            {"accuracy": 0.982, "sensitivity": 0.968, "specificity": 0.996, "auc": 0.9987},
        )
    ],
    "drusen_vs_normal": [
        PaperRow(
            "drusen_vs_normal",
            "paper, binary drusen vs normal",
            {"accuracy": 0.990, "sensitivity": 0.980, "specificity": 0.992, "auc": 0.9996},
        )
    ],
    "pneumonia_vs_normal": [
        PaperRow(
            "pneumonia_vs_normal",
            "paper, pneumonia vs normal",
            {"accuracy": 0.928, "sensitivity": 0.932, "specificity": 0.901, "auc": 0.968},
        )
    ],
    "bacterial_vs_viral": [
        PaperRow(
            "bacterial_vs_viral",
            "paper, bacterial vs viral",
            {"accuracy": 0.907, "sensitivity": 0.886, "specificity": 0.909, "auc": 0.940},
        )
    ],
}
EXPERT_WEIGHTED_ERROR = {"low": 0.004, "high": 0.105, "mean": 0.048, "experts": 6}


def paper_rows(evaluation: metrics.Evaluation) -> list[PaperRow]:
    """The published rows comparable with this evaluation's class set."""
    rows = list(PAPER["oct"]) if metrics.is_oct(evaluation.class_names) else []
    for task in evaluation.tasks:
        rows += PAPER.get(task.name, [])
    return rows


def _key(row: PaperRow, metric: str) -> str:
    return f"{row.task}/{metric}" if row.task else metric


# ----------------------------------------------------------------------------- CSV


def prediction_rows(
    paths: Sequence[str],
    patients: Sequence[str],
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
) -> list[dict[str, Any]]:
    """One dict per image: path, patient, label, probabilities, prediction, referral."""
    predictions = np.argmax(probs, axis=1)
    referrals = metrics.referral_decisions(class_names, predictions)
    rows = []
    for i, path in enumerate(paths):
        label = int(labels[i]) if labels is not None and labels[i] >= 0 else None
        row = {
            "path": path,
            "patient": patients[i] if patients is not None else "",
            "label": class_names[label] if label is not None else "",
            "prediction": class_names[int(predictions[i])],
        }
        row.update({f"p_{name}": f"{float(probs[i, c]):.6f}" for c, name in enumerate(class_names)})
        row["referral"] = referrals[i]
        rows.append(row)
    return rows


def write_csv(
    path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    """Write dict rows (all with the same keys) as CSV; ``columns`` (default: the first row's
    keys) fixes the header, so an empty table still has it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(columns) if columns is not None else list(rows[0]) if rows else ["path"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


# ----------------------------------------------------------------------------- JSON


def report_document(evaluation: metrics.Evaluation, provenance: dict[str, Any]) -> dict[str, Any]:
    """report.json: provenance, every metric with its CI, confusion matrix, ROC points, the paper."""
    doc = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "provenance": provenance,
    }
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
        doc["paper"]["experts_weighted_error"] = EXPERT_WEIGHTED_ERROR
    return doc


def write_json(path: str | Path, document: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    return path


# ----------------------------------------------------------------------------- HTML


def _pct(value: float | None) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def _ours(evaluation: metrics.Evaluation, key: str) -> str:
    value = evaluation.metrics.get(key, float("nan"))
    lo, hi = evaluation.ci95.get(key, (float("nan"), float("nan")))
    ci = f" <span class=ci>({_pct(lo)}–{_pct(hi)})</span>" if np.isfinite(lo) else ""
    return f"{_pct(value)}{ci}"


def _comparison_table(evaluation: metrics.Evaluation) -> str:
    rows = paper_rows(evaluation)
    if not rows:
        return ""
    published = [{_key(r, k): v for k, v in r.values.items()} for r in rows]
    keys = list(dict.fromkeys(key for values in published for key in values))
    head = "".join(f"<th>{html.escape(r.model)}</th>" for r in rows)
    body = []
    for key in keys:
        cells = "".join(f"<td>{_pct(values.get(key))}</td>" for values in published)
        body.append(f"<tr><th>{html.escape(key)}</th><td>{_ours(evaluation, key)}</td>{cells}</tr>")
    return (
        f"<h2>Our numbers beside the paper's</h2><table><tr><th>metric</th><th>ours (95% CI)</th>{head}</tr>"
        + "".join(body)
        + f"</table><p class=note>Paper: {SOURCE}. CIs: bootstrap over patients.</p>"
    )


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


def _headline(evaluation: metrics.Evaluation) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k.replace('/sensitivity', ' recall'))}</th>"
        f"<td>{_ours(evaluation, k)}</td></tr>"
        for k in headline_keys(evaluation)
    )
    warnings = "".join(
        f"<p class=warn>Warning: {html.escape(w)}</p>" for w in headline_warnings(evaluation)
    )
    return f"<h2>Balanced accuracy and per-class recall</h2>{warnings}<table>{rows}</table>"


def _all_metrics_table(evaluation: metrics.Evaluation) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_ours(evaluation, k)}</td></tr>"
        for k in evaluation.metrics
    )
    return (
        f"<h2>Every metric</h2><table><tr><th>metric</th><th>value (95% CI)</th></tr>{rows}</table>"
    )


def _roc_charts(evaluation: metrics.Evaluation) -> str:
    charts = []
    paper = paper_rows(evaluation)
    for task in evaluation.tasks:
        fpr, tpr, _ = evaluation.roc[task.name]
        m = evaluation.metrics
        markers = [
            svg.RocMarker(
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
                    svg.RocMarker(
                        f"{row.model} ({_pct(sens)} sens, {_pct(spec)} spec)",
                        1 - spec,
                        sens,
                        shape="diamond",
                    )
                )
        series = [svg.RocSeries(f"ours, AUC {_pct(m[task.name + '/auc'])}", fpr, tpr)]
        title = f"{task.name.replace('_', ' ')}: {task.positive_label} vs {task.negative_label}"
        charts.append(svg.roc_svg(title, series, markers))
        charts.append(svg.roc_svg(title + " (zoom)", series, markers, zoom=0.2))
    per_class = [
        svg.RocSeries(
            f"{name} vs rest, AUC {_pct(evaluation.metrics[f'per_class/{name}/auc'])}",
            *evaluation.roc[f"per_class/{name}"][:2],
        )
        for name in evaluation.class_names
    ]
    charts.append(svg.roc_svg("one class vs the rest", per_class))
    return (
        "<h2>ROC curves</h2><div class=row>" + "".join(f"<div>{c}</div>" for c in charts) + "</div>"
    )


def render_html(evaluation: metrics.Evaluation, provenance: dict[str, Any]) -> str:
    """The whole report page (self-contained: inline SVG and CSS)."""
    prov = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in provenance.items()
    )
    strip = ""
    if "weighted_error" in evaluation.metrics:
        e = EXPERT_WEIGHTED_ERROR
        strip = "<h2>Weighted error beside the six experts</h2>" + svg.range_strip_svg(
            f"weighted error: ours vs the paper's {e['experts']} experts (range, mean line)",
            evaluation.metrics["weighted_error"],
            e["low"],
            e["high"],
            mean=e["mean"],
        )
    style = (
        "body{font-family:sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;"
        "margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        ".ci{color:#666;font-size:90%}.note{color:#555;font-size:90%}.row{display:flex;flex-wrap:wrap;"
        "gap:12px}.warn{color:#a00;font-weight:bold}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Evaluation report</title><style>{style}</style>"
        f"</head><body><h1>Evaluation report</h1><table>{prov}"
        f"<tr><th>images</th><td>{evaluation.n_images}</td></tr>"
        f"<tr><th>patients</th><td>{evaluation.n_patients}</td></tr></table>"
        + _headline(evaluation)
        + _comparison_table(evaluation)
        + strip
        + _roc_charts(evaluation)
        + "<h2>Confusion matrix</h2>"
        + svg.confusion_svg(evaluation.confusion, evaluation.class_names)
        + _all_metrics_table(evaluation)
        + "</body></html>\n"
    )


def write_report(
    out_dir: str | Path,
    evaluation: metrics.Evaluation,
    provenance: dict[str, Any],
    rows: Sequence[dict[str, Any]],
) -> dict[str, Path]:
    """Write report.json, predictions.csv and report.html into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    return {
        "json": write_json(out_dir / "report.json", report_document(evaluation, provenance)),
        "csv": write_csv(out_dir / "predictions.csv", rows),
        "html": _write_text(out_dir / "report.html", render_html(evaluation, provenance)),
    }


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
