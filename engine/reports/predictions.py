"""``predictions.csv``'s rows: one per image, with its class probabilities and referral.

Apart from the report's charts so that ``launch.predict``, which writes only this table, does
not import matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.evaluation import metrics


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
