"""The paper's published numbers, in one place: what every report and test compares us with.

Kermany et al., "Identifying Medical Diagnoses and Treatable Diseases by Image-Based Deep
Learning", Cell 172(5):1122-1131 (2018), doi:10.1016/j.cell.2018.02.010; copied from
../shared/docs/ANCHORS.md (the project's record of them). Fractions, not percentages. The
metric keys are those of :func:`engine.evaluation.metrics.compute_metrics`; for the OCT
4-class models the paper's sensitivity/specificity are the urgent-referral decision's.
"""

from __future__ import annotations

import dataclasses

SOURCE = "Kermany et al., Cell 172(5):1122-1131 (2018)"


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One published model's numbers for one task: metric key -> value (fractions)."""

    task: str  # the metric-key prefix it is compared with, "" for top-level keys
    model: str
    values: dict[str, float]


# Classification results (the paper's Figures 3 and 6, ANCHORS.md's tables), keyed by the task
# they are compared with: "oct" for the 4-class models, else the binary task's name.
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

# Six human experts graded the same 1,000 OCT test images. Their sensitivity/specificity points
# (Figure 3) are not in ANCHORS.md, so reports draw their weighted-error range instead.
EXPERT_WEIGHTED_ERROR = {"low": 0.004, "high": 0.105, "mean": 0.048, "experts": 6}

# The occlusion test (STAR Methods, Figure 5): on 491 OCT images the largest-drop region matched
# the clinically significant pathology this often, overall and per class.
OCCLUSION_LESION_CHECK = {
    "fraction": 0.947,
    "per_class": {"DRUSEN": 1.0, "CNV": 0.94, "DME": 0.91},
    "images": 491,
}
