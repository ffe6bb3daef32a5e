"""``python -m launch.benchmark --what=occlusion`` keeps running (tiny sizes; numbers not judged)."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from benchmarks import occlusion as bench
from launch import benchmark


def test_small_cnn_rows_and_ratios(capsys):
    code = benchmark.main(
        [
            "--what=occlusion",
            "--model=small_cnn",
            "--size=32",
            "--images=2",
            "--window=8",
            "--stride=8",
            "--max_batch=8",
            "--rounds=2",
            "--skip=monai",
        ]
    )
    assert code == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.strip().splitlines())}
    assert rows["occlusion/engine/heatmaps_per_s"]["windows_per_image"] == 16
    for peer in ("ceiling", "naive"):
        ratio = rows[f"occlusion/engine_vs_{peer}"]
        assert ratio["value"] > 0 and len(ratio["per_round"]) == 2
    assert rows["occlusion/naive/occluded_forwards_per_s"]["forwards"] == 16


@pytest.mark.foreign
def test_monai_peer_uses_exactly_our_windows():
    args = types.SimpleNamespace(
        model="resnet18", channels=1, classes=4, window=8, stride=8, size=32, max_batch=8
    )
    images = np.zeros((1, 32, 32, 1), np.uint8)
    unit = bench.monai_unit(args, None, None, images, windows=16)
    seconds, forwards, heatmaps = unit()
    assert forwards == 16 and heatmaps == 1.0 and seconds > 0
    with pytest.raises(SystemExit, match="windows per image"):
        bench.monai_unit(
            types.SimpleNamespace(**{**vars(args), "stride": 5}), None, None, images, windows=25
        )
