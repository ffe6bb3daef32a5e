"""The dense (In Silico Labeling) task: masked per-pixel loss, Pearson metrics with well CIs, and
a whole run through the shared trainer: data-parallel steps, resume, transfer to a new label,
launch.evaluate's report."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from engine.evaluation.pixel_metrics import pearson_by_label, pearson_from_sums, well_sums
from engine.losses import masked_pixel_cross_entropy


def _logits_for(target: np.ndarray, bins: int, confidence: float = 20.0) -> jnp.ndarray:
    index = np.round(target * (bins - 1)).astype(int)
    return jnp.asarray(np.eye(bins)[index] * confidence)


def test_masked_pixels_and_unstained_labels_do_not_count():
    rng = np.random.default_rng(0)
    target = rng.random((2, 4, 4, 2)).astype(np.float32)
    mask = np.ones_like(target)
    mask[..., 1] = 0  # label 1 not stained anywhere
    mask[0, :2, :, 0] = 0  # half of one crop masked
    logits = _logits_for(target, 8)
    wrong = np.asarray(logits).copy()
    wrong[0, :2, :, 0] = wrong[0, :2, :, 0, ::-1]  # garbage only where masked
    wrong[..., 1, :] = 0.0  # and on the unstained label
    ex = jnp.ones(2)
    good, hits = masked_pixel_cross_entropy(logits, target, mask, ex)
    same, _ = masked_pixel_cross_entropy(jnp.asarray(wrong), target, mask, ex)
    assert float(good) == pytest.approx(float(same), abs=1e-6) and float(good) < 1e-3
    np.testing.assert_allclose(np.asarray(hits), 1.0)
    uniform, _ = masked_pixel_cross_entropy(jnp.zeros_like(logits), target, mask, ex)
    assert float(uniform) == pytest.approx(np.log(8), rel=1e-5)
    _, hits = masked_pixel_cross_entropy(
        jnp.asarray(wrong), target, np.ones_like(target), jnp.array([0.0, 1.0])
    )
    assert float(hits[0]) == 0.0  # padding rows report nothing


def test_pearson_from_well_sums_matches_numpy_and_resamples_wells():
    rng = np.random.default_rng(1)
    wells, preds, trues = [], [], []
    for i in range(6):
        true = rng.random((8, 8, 1))
        pred = true + rng.normal(0, 0.2 + 0.1 * i, true.shape)
        preds.append(pred)
        trues.append(true)
        wells.append(well_sums(pred, true, np.ones_like(true)))
    pooled = np.corrcoef(
        np.concatenate([p.ravel() for p in preds]), np.concatenate([t.ravel() for t in trues])
    )[0, 1]
    assert float(pearson_from_sums(np.sum(wells, axis=0)[0])) == pytest.approx(pooled, rel=1e-9)
    table = pearson_by_label(wells, [f"w{i}" for i in range(6)], ["DAPI"], n_resamples=300, seed=0)
    row = table["DAPI"]
    assert row["r"] == pytest.approx(pooled) and row["ci_low"] < row["r"] < row["ci_high"] < 1.0
    assert row["wells"] == 6 and row["pixels"] == 6 * 64
    single = pearson_by_label(wells[:1], ["w0"], ["DAPI"], n_resamples=100)
    assert single["DAPI"]["ci_low"] is None  # one well: nothing to resample


TINY = {"width": 4, "num_bins": 8, "tower_modules": [1, 1], "upper_modules": 1}


@pytest.mark.slow
def test_isl_run_resumes_transfers_to_a_new_label_and_reports(tmp_path, capsys):
    from data_pipelines.isl_synthetic import write_condition
    from engine.config import TrainConfig
    from engine.inference import load_run
    from engine.mesh import make_mesh
    from engine.trainer import train
    from launch import evaluate
    from models.loading import flat_state

    data_a, data_b = write_condition(tmp_path / "a", "a"), write_condition(tmp_path / "b", "b")
    mesh = make_mesh(8)
    base = TrainConfig(
        dataset="isl_synthetic_a",
        data_dir=str(data_a),
        model="isl",
        pretrained=None,
        transfer="scratch",
        in_channels=7,
        model_kwargs=TINY,
        output_size=6,
        batch_size=8,
        eval_batch_size=8,
        steps=2,
        eval_every=2,
        log_every=1,
        val_fraction=0.2,
        best_metric="pearson",
        progress=False,
        final_split=None,
        workdir=str(tmp_path / "run_a"),
    )
    assert base.task == "isl"  # declared by the data set
    first = train(base, mesh)
    assert first.step == 2 and first.best_step == 2
    assert set(first.validation[-1]) >= {
        "pearson",
        "pearson/DAPI_CONFOCAL",
        "pearson/DEAD_CONFOCAL",
    }
    resumed = train(base.replace(steps=3, eval_every=3), mesh)
    assert resumed.resumed_from == 2 and resumed.step == 3
    config = json.loads((tmp_path / "run_a" / "config.json").read_text())
    assert config["class_names"] == ["CELLMASK_CONFOCAL", "DAPI_CONFOCAL", "DEAD_CONFOCAL"]
    assert config["metadata"]["input_size"] == 14 and config["task"] == "isl"

    transfer = base.replace(
        dataset="isl_synthetic_b",
        data_dir=str(data_b),
        labels=("DAPI_CONFOCAL", "MAP2_CONFOCAL"),
        transfer="finetune",
        backbone_lr_scale=1.0,
        init_from=str(tmp_path / "run_a"),
        max_wells=1,
        val_fraction=0.0,
        steps=1,
        lr=1e-12,
        workdir=str(tmp_path / "run_b"),
    )
    train(transfer, mesh)
    source, target = (
        flat_state(load_run(tmp_path / "run_a").model),
        flat_state(load_run(tmp_path / "run_b", "latest").model),
    )
    np.testing.assert_allclose(
        target["heads/0/conv/kernel"], source["heads/1/conv/kernel"], atol=1e-6
    )  # DAPI
    assert not np.any(np.abs(target["heads/1/conv/kernel"]) > 1e-6)  # MAP2: a new (zero) head
    np.testing.assert_allclose(
        target["towers/0/0/expand/kernel"], source["towers/0/0/expand/kernel"], atol=1e-6
    )

    args = evaluate.build_parser().parse_args(
        [f"--workdir={tmp_path / 'run_a'}", "--bootstrap=50", "--devices=8"]
    )
    paths = evaluate.run(args)
    report = json.loads(paths["json"].read_text())
    assert set(report["metrics"]) == {f"pearson/{x}" for x in config["class_names"]}
    assert report["provenance"]["wells"] and report["bootstrap"]["unit"] == "well"
    page = paths["html"].read_text()
    from launch import predict  # classification-only commands refuse the run in one line

    png = next((data_a / "test").rglob("*.png"))
    assert predict.main([f"--workdir={tmp_path / 'run_a'}", str(png)]) == 1
    assert "task=isl run" in capsys.readouterr().err
    assert (
        page.count('<a href="scatter_') == 3
        and "DAPI_CONFOCAL predicted" in page
        and "data:image/png" in page
    )
