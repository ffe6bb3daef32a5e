"""Whole runs through engine.trainer on the bundled OCT sample with 8 simulated devices."""

from __future__ import annotations

import numpy as np
import pytest

from engine.inference import load_run
from engine.mesh import make_mesh
from engine.preemption import StopRequest
from engine.run_log import read_metrics
from engine.state import build_model
from engine.trainer import train
from engine.workdir import Workdir


class StopAfterSteps(StopRequest):
    """Asks to stop at the ``steps``-th check (the loop checks once per step)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.left = steps

    @property
    def requested(self) -> bool:
        self.left -= 1
        if self.left <= 0:
            self.reason = "test"
        return self.left <= 0


def _latest_variables(workdir: str):
    run = load_run(workdir, "latest")
    from models.loading import flat_state

    return run.step, flat_state(run.model)


@pytest.mark.slow
def test_two_steps_end_to_end(tiny_config):
    mesh = make_mesh(8)
    config = tiny_config.replace(steps=2)
    summary = train(config, mesh)
    wd = Workdir(config.workdir)
    assert summary.step == 2 and summary.stopped is None
    config_json = wd.read_config()
    assert config_json["class_names"] == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert config_json["metadata"]["input_size"] == 32 and config_json["in_channels"] == 1
    assert (wd.versions_path).is_file() and list(wd.tb_dir.glob("events.out.tfevents.*"))
    assert wd.checkpoint_steps("latest") == [2] and wd.checkpoint_steps("best") == [2]
    rows = read_metrics(wd)
    assert {r.get("split") for r in rows} >= {"train", "val"}
    run = load_run(config.workdir)
    assert run.step == 2 and run.class_names == ("CNV", "DME", "DRUSEN", "NORMAL")


@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(tiny_config):
    """Stopped after 3 of 6 steps, resumed: bitwise the parameters of a run never stopped."""
    mesh = make_mesh(8)
    straight = tiny_config.replace(
        steps=6, eval_every=3, schedule="cosine", workdir=tiny_config.workdir + "_straight"
    )
    interrupted = straight.replace(workdir=tiny_config.workdir + "_interrupted")
    train(straight, mesh)
    first = train(interrupted, mesh, stop=StopAfterSteps(3))
    assert first.stopped == "test" and first.step == 3
    assert Workdir(interrupted.workdir).checkpoint_steps("latest")[-1] == 3
    second = train(interrupted, mesh)
    assert second.resumed_from == 3 and second.step == 6
    step_a, a = _latest_variables(straight.workdir)
    step_b, b = _latest_variables(interrupted.workdir)
    assert step_a == step_b == 6 and a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_linear_probe_computes_features_once(tiny_config):
    """Features are computed once per image, reused across epochs and by a resumed run."""
    mesh = make_mesh(8)
    config = tiny_config.replace(
        transfer="linear_probe", probe_solver="steps", steps=5, eval_every=5
    )  # 36 train images, batch 16
    train(config, mesh)
    events = [r for r in read_metrics(Workdir(config.workdir)) if r.get("event") == "features"]
    assert [(e["split"], e["computed"], e["cached"]) for e in events] == [
        ("train", 36, 0),
        ("val", 12, 0),
    ]
    summary = train(config.replace(steps=8), mesh)
    assert summary.resumed_from == 5 and summary.step == 8
    events = [r for r in read_metrics(Workdir(config.workdir)) if r.get("event") == "features"][2:]
    assert [(e["split"], e["computed"], e["cached"]) for e in events] == [
        ("train", 0, 36),
        ("val", 0, 12),
    ]
    # Only the classifier trained: the checkpoint's backbone is the initial one, its head is not.
    trained = load_run(config.workdir, "latest").model
    initial = build_model(config, 4)
    np.testing.assert_array_equal(trained.stem.conv.kernel[...], initial.stem.conv.kernel[...])
    np.testing.assert_array_equal(trained.stem.bn.mean[...], initial.stem.bn.mean[...])
    assert not np.allclose(trained.head.kernel[...], initial.head.kernel[...])


def test_linear_probe_resumed_equals_uninterrupted(tiny_config):
    """The probe's batch position is checkpointed like a Grain iterator: resume is bitwise."""
    mesh = make_mesh(8)
    straight = tiny_config.replace(
        transfer="linear_probe",
        probe_solver="steps",
        steps=6,  # 36 train images, batch 16: 3 epochs of 2 steps
        eval_every=3,
        workdir=tiny_config.workdir + "_straight",
    )
    interrupted = straight.replace(workdir=tiny_config.workdir + "_interrupted")
    train(straight, mesh)
    first = train(interrupted, mesh, stop=StopAfterSteps(3))
    assert first.stopped == "test" and first.step == 3
    saved = Workdir(interrupted.workdir).latest_dir / "3" / "data_iter"
    assert [p.name for p in saved.glob("*.json")] == ["process_0-of-1.json"]
    second = train(interrupted, mesh)
    assert second.resumed_from == 3 and second.step == 6
    step_a, a = _latest_variables(straight.workdir)
    step_b, b = _latest_variables(interrupted.workdir)
    assert step_a == step_b == 6 and a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_resume_refuses_a_different_run(tiny_config):
    mesh = make_mesh(8)
    train(tiny_config.replace(steps=1, eval_every=1), mesh)
    with pytest.raises(ValueError, match="different run.*seed"):
        train(tiny_config.replace(steps=2, seed=5), mesh)


def test_init_from_starts_from_another_runs_best_weights(tiny_config):
    """Train all layers, then only the classifier from that run: the backbone is the first run's."""
    mesh = make_mesh(8)
    probe = tiny_config.replace(steps=2, eval_every=2, workdir=tiny_config.workdir + "_first")
    train(probe, mesh)
    tuned = tiny_config.replace(
        transfer="finetune", finetune_stages=0, init_from=probe.workdir, steps=1, eval_every=1
    )
    train(tuned, mesh)
    before, after = load_run(probe.workdir).model, load_run(tuned.workdir).model
    np.testing.assert_array_equal(before.stem.conv.kernel[...], after.stem.conv.kernel[...])
    assert not np.array_equal(before.head.kernel[...], after.head.kernel[...])
    with pytest.raises(ValueError, match="init_from"):
        train(
            tuned.replace(classes=("NORMAL", "CNV"), workdir=tiny_config.workdir + "_other"), mesh
        )


def test_linear_probe_leaves_out_an_undecodable_image(tiny_config, tmp_path):
    """A JPEG with a valid header but junk pixel data is skipped, named, and not cached."""
    import shutil

    from data_pipelines.sources import BUNDLED_OCT_SAMPLE

    tree = tmp_path / "oct"
    shutil.copytree(BUNDLED_OCT_SAMPLE, tree)
    bad = min((tree / "train" / "CNV").glob("*.jpeg"))
    junk = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    bad.write_bytes(bad.read_bytes()[:2] + b"\xff\xc0\x00\x03" + junk + b"\xff\xd9")
    config = tiny_config.replace(
        dataset="oct",
        data_dir=str(tree),
        on_bad_image="skip",
        transfer="linear_probe",
        steps=1,
        eval_every=1,
        val_fraction=0.25,
    )
    train(config, make_mesh(8))
    rows = read_metrics(Workdir(config.workdir))
    skipped = [r for r in rows if r.get("event") == "skipped_bad_images"]
    assert [p for r in skipped for p in r["paths"]] == [str(bad)]
    features = {r["split"]: r["computed"] for r in rows if r.get("event") == "features"}
    assert features["train"] + features["val"] == 47  # 48 images, one undecodable


def test_resume_does_not_need_the_pretrained_file(tiny_config, tmp_path):
    """The checkpoint holds every weight: a resume works after the --pretrained file is gone."""
    from flax import nnx

    import models
    from models import weights_file
    from models.loading import flat_state

    weights = tmp_path / "small_cnn_start.npz"
    start = models.create("small_cnn", num_classes=4, in_channels=1, rngs=nnx.Rngs(7))
    meta = models.metadata_for("small_cnn", num_classes=4, in_channels=1)
    weights_file.save(weights, flat_state(start), meta)
    mesh = make_mesh(8)
    config = tiny_config.replace(
        transfer="finetune", pretrained=str(weights), steps=2, eval_every=1
    )
    first = train(config, mesh, stop=StopAfterSteps(1))
    assert first.step == 1
    weights.unlink()
    second = train(config, mesh)
    assert second.resumed_from == 1 and second.step == 2


def test_feature_cache_key_follows_the_ordered_image_paths(tiny_config):
    """Same count, other files (classes, skipped images) or order -> another cache."""
    from data_pipelines.preprocess import PreprocessConfig
    from engine.linear_probe import cache_fingerprint

    cfg = PreprocessConfig(input_size=32, channels=1)
    key = cache_fingerprint(tiny_config, ["a.jpeg", "b.jpeg"], cfg)
    assert key == cache_fingerprint(tiny_config, ["a.jpeg", "b.jpeg"], cfg)
    assert key != cache_fingerprint(tiny_config, ["a.jpeg", "c.jpeg"], cfg)
    assert key != cache_fingerprint(tiny_config, ["b.jpeg", "a.jpeg"], cfg)
    assert key != cache_fingerprint(tiny_config, ["a.jpeg", "b.jpeg"], cfg.replace(input_size=64))
    assert key != cache_fingerprint(
        tiny_config.replace(model_kwargs={"width": 8}), ["a.jpeg", "b.jpeg"], cfg
    )
