"""``python -m launch.study``: nested-CV scores of frozen-feature variants, one JSON line each."""

from __future__ import annotations

import json

from launch import study


def test_study_scores_every_variant_on_training_images(tmp_path, capsys):
    out = tmp_path / "study.jsonl"
    code = study.main(
        [
            "--dataset=oct_sample",
            "--model=small_cnn",
            "--pretrained=none",
            "--input_sizes=32",
            "--cv_folds=3",
            "--batch_size=16",
            "--devices=8",
            f"--out={out}",
        ]
    )
    assert code == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert printed == rows
    assert [r["variant"] for r in rows] == [
        "32px/pre_logits",
        "32px/multi_stage",
        "32px/pre_logits+flip",
        "32px/multi_stage+flip",
    ]
    assert all(r["images"] == 48 and r["folds"] == 3 for r in rows)  # train + val, no test
    dims = {r["features"]: r["feature_dims"] for r in rows}
    assert dims["multi_stage"] > dims["pre_logits"]
    for r in rows:
        assert 0.0 <= r["cv/balanced_accuracy"] <= 1.0 and len(r["nested_l2"]) == 3
    # Flip averaging changes the features, so at least one score moves.
    plain, flipped = rows[0], rows[2]
    assert any(plain[k] != flipped[k] for k in plain if k.startswith("cv/"))
