"""``python -m launch.benchmark --what=occlusion`` keeps running (tiny sizes; numbers not
judged)."""

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


def test_method_comparison_per_family(capsys):
    code = benchmark.main(
        [
            "--what=occlusion",
            "--families",
            "small_cnn",
            "--size=32",
            "--window=8",
            "--stride=4",
            "--sample_windows=9",
            "--max_batch=8",
            "--rounds=1",
        ]
    )
    assert code == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.strip().splitlines())}
    assert rows["occlusion/small_cnn/incremental_max_abs_error"]["value"] <= 1e-5
    assert rows["occlusion/small_cnn/flop_bound"]["value"] > 1
    for method in ("full", "incremental", "approximate"):
        assert rows[f"occlusion/small_cnn/{method}/windows_per_s"]["windows_timed"] == 9
    assert "ratio_to_bound" in rows["occlusion/small_cnn/incremental_vs_full"]


@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_naive_peer_computes_the_engines_heatmap(fill):
    """The naive loop occludes with the same --fill as the engine: the same drops."""
    from engine.occlusion import sweep

    args = types.SimpleNamespace(
        model="small_cnn",
        channels=1,
        classes=4,
        window=8,
        stride=8,
        size=32,
        max_batch=8,
        naive_images=2,
        fill=fill,
    )
    apply_fn, state = bench._jax_model(args)
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
    unit = bench.naive_unit(args, apply_fn, state, images, windows=16)
    assert unit()[1] == 16 * 2
    config = sweep.OcclusionConfig(window=8, stride=8, fill=fill, max_batch=8)
    engine = sweep.occlusion_sensitivity(apply_fn, state, images, config=config)
    np.testing.assert_allclose(unit.drops, engine.drops, atol=1e-5)
    assert np.abs(unit.drops).max() > 0


@pytest.mark.foreign
def test_monai_peer_runs_our_windows_with_a_black_box():
    args = types.SimpleNamespace(
        model="resnet18", channels=1, classes=4, window=8, stride=8, size=32, max_batch=8
    )
    images = np.full((1, 32, 32, 1), 255, np.uint8)  # white: normalised +2 everywhere
    unit = bench.monai_unit(args, None, None, images, windows=16)
    seconds, forwards, heatmaps = unit()
    assert forwards == ((32 - 8) // 8 + 1) ** 2 and heatmaps == 1.0 and seconds > 0
    assert unit.seen["copies"] == forwards  # counted from the copies MONAI's network saw
    assert unit.seen["min"] == pytest.approx((0 - bench.MEAN) / bench.STD)  # black, not grey
    with pytest.raises(SystemExit, match="windows per image"):
        bench.monai_unit(
            types.SimpleNamespace(**{**vars(args), "stride": 5}), None, None, images, windows=25
        )
