"""Print docs/RESULTS.md rows from finished runs: the nested-CV estimate, then the test split.

    python scripts/results_table.py runs/oct runs/oct_cnv ...

Reads ``<run>/cv/report.json`` (written by the L-BFGS linear probe) and
``<run>/eval/test/report.json`` (launch.evaluate); every number is the report's, with its
patient-bootstrap 95% CI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _cell(metrics: dict, key: str) -> str:
    entry = metrics.get(key)
    if entry is None or entry["value"] is None:
        return "–"
    lo, hi = entry["ci95"]
    ci = "" if lo is None else f" ({100 * lo:.1f}–{100 * hi:.1f})"
    return f"{100 * entry['value']:.1f}%{ci}"


def _task(metrics: dict) -> str:
    for name in ("urgent_referral", "pneumonia_vs_normal", "bacterial_vs_viral"):
        if f"{name}/auc" in metrics:
            return name
    return next(k.split("/")[0] for k in metrics if k.endswith("/auc") and "per_class" not in k)


def rows(run: Path) -> list[str]:
    out = []
    for label, path in (
        ("nested CV, train", run / "cv" / "report.json"),
        ("shared test split", run / "eval" / "test" / "report.json"),
    ):
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        m, task = doc["metrics"], _task(doc["metrics"])
        recalls = ", ".join(
            f"{n} {_cell(m, f'per_class/{n}/sensitivity').split(' ')[0]}"
            for n in doc["class_names"]
        )
        out.append(
            f"| {run.name} | {label} | {doc['n_images']} / {doc['n_patients']} "
            f"| {_cell(m, 'balanced_accuracy')} | {_cell(m, 'accuracy')} "
            f"| {_cell(m, f'{task}/sensitivity')} | {_cell(m, f'{task}/specificity')} "
            f"| {_cell(m, f'{task}/auc')} | {_cell(m, 'weighted_error')} | {recalls} |"
        )
    return out


if __name__ == "__main__":
    print(
        "| run | estimate | images / patients | balanced acc. | accuracy | sensitivity "
        "| specificity | AUC | weighted error | per-class recall |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        print("\n".join(rows(Path(arg))))
