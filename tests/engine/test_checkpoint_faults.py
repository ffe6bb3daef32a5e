"""Damaged checkpoints: one logged line naming the step, then the newest one that restores.

Each kind of damage a preempted VM, a bad disk or a half-copied workdir leaves (a truncated
array file, a missing item, a checkpoint of another structure, unreadable metadata, a
truncated data-iterator file) is applied to the newest of two checkpoints; the older one must
come back bit for bit, the damaged one set aside so its step can be saved again.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import grain
import jax
import numpy as np
import pytest

import models
from engine.checkpoints import CheckpointError, RunCheckpoints, restore_model_variables
from engine.mesh import make_mesh
from engine.optim import make_optimizer
from engine.state import build_model, init_train_state
from engine.workdir import Workdir

# Orbax's sibling reads of a failed restore end as unraisable coroutine errors; the engine
# silences them outside pytest, which installs its own hook per test.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _state(config, mesh, offset: float, step: int):
    meta = models.metadata_for(config.model, num_classes=4, in_channels=config.in_channels)
    tx, _ = make_optimizer(config, 10, "head")
    state = init_train_state(build_model(config, 4), config, meta, tx, mesh)[1]
    return state.replace(
        step=state.step + step, params=jax.tree.map(lambda x: x + offset, state.params)
    )


def _iterator():
    return iter(grain.MapDataset.range(100).to_iter_dataset())


def _truncate_biggest(folder: Path) -> None:
    biggest = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:100])


def _other_structure(step: Path, config) -> None:
    """Step 4 replaced by a checkpoint of a wider network (e.g. a workdir copied over)."""
    shutil.rmtree(step)
    other = config.replace(model_kwargs={"widths": (8, 16, 64)})
    checkpoints = RunCheckpoints(Workdir(config.workdir), async_save=False)
    checkpoints.save_latest(_state(other, make_mesh(2), 4.0, 4), _iterator())
    checkpoints.close()


DAMAGE = {
    "truncated array file": lambda step, _: _truncate_biggest(step / "model"),
    "missing item": lambda step, _: shutil.rmtree(step / "train"),
    "unreadable item metadata": lambda step, _: (step / "model" / "_METADATA").write_bytes(
        b"\0" * 9
    ),
    "truncated data iterator": lambda step, _: next((step / "data_iter").glob("*.json")).write_text(
        '{"next_ind'
    ),
    "other structure": _other_structure,
}


@pytest.fixture
def two_checkpoints(tiny_config):
    """Steps 2 and 4 under latest/ (with a data iterator at 5 and 9 elements read)."""
    mesh = make_mesh(2)
    workdir = Workdir(tiny_config.workdir)
    checkpoints = RunCheckpoints(workdir, async_save=False)
    states = {}
    data = _iterator()
    for step, taken in ((2, 5), (4, 4)):
        for _ in range(taken):
            next(data)
        states[step] = _state(tiny_config, mesh, offset=float(step), step=step)
        checkpoints.save_latest(states[step], data)
    checkpoints.close()
    return workdir, states, mesh


def _restore(tiny_config, workdir, mesh):
    checkpoints = RunCheckpoints(workdir)
    data = _iterator()
    try:
        state = checkpoints.restore_latest(_state(tiny_config, mesh, 0.0, 0), data)
    finally:
        checkpoints.close()
    return state, next(data)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(
    tiny_config, two_checkpoints, damage, caplog
):
    workdir, states, mesh = two_checkpoints
    DAMAGE[damage](workdir.latest_dir / "4", tiny_config)
    with caplog.at_level(logging.WARNING, logger="engine.checkpoints"):
        restored, next_element = _restore(tiny_config, workdir, mesh)
    assert int(restored.step) == 2 and next_element == 5  # step 2's data position, too
    for a, b in zip(jax.tree.leaves(states[2]), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    failed = [r.getMessage() for r in caplog.records if "cannot be restored" in r.getMessage()]
    assert len(failed) == 1 and "latest/4 " in failed[0], failed
    assert "\n" not in failed[0] and len(failed[0]) < 600
    # Set aside, so step 4 is written again by the resumed run.
    assert workdir.checkpoint_steps("latest") == [2]
    assert [
        p.name.split("-")[:2] for p in (workdir.root / "checkpoints" / "damaged").iterdir()
    ] == [["latest", "4"]]
    again = RunCheckpoints(workdir, async_save=False)
    again.save_latest(states[4])
    again.close()
    assert workdir.checkpoint_steps("latest") == [2, 4]


def test_no_readable_checkpoint_is_an_error_listing_them_never_a_fresh_start(
    tiny_config, two_checkpoints
):
    workdir, _, mesh = two_checkpoints
    for step in ("2", "4"):
        _truncate_biggest(workdir.latest_dir / step / "model")
    with pytest.raises(CheckpointError) as caught:
        _restore(tiny_config, workdir, mesh)
    message = str(caught.value)
    assert "step 4: ValueError" in message and "step 2: ValueError" in message
    assert "\n" not in message and str(workdir.latest_dir) in message
    assert workdir.checkpoint_steps("latest") == [2, 4]  # nothing moved when nothing restores


def test_evaluation_falls_back_from_a_damaged_best_to_the_latest(tiny_config, caplog):
    """best/ unreadable: evaluate/predict use the newest readable latest step, said in one line."""
    mesh = make_mesh(1)
    workdir = Workdir(tiny_config.workdir)
    checkpoints = RunCheckpoints(workdir, async_save=False)
    saved = {step: _state(tiny_config, mesh, float(step), step) for step in (2, 4)}
    checkpoints.save_latest(saved[2])
    checkpoints.save_best_if_better(saved[4], {"accuracy": 0.5})
    checkpoints.save_latest(saved[4])
    checkpoints.close()
    _truncate_biggest(workdir.best_dir / "4" / "model")
    _truncate_biggest(workdir.latest_dir / "4" / "model")
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        saved[2].model_variables(),
    )
    with caplog.at_level(logging.WARNING, logger="engine.checkpoints"):
        variables, step, source = restore_model_variables(workdir, "best", target)
    assert (step, source) == (2, "latest")
    for a, b in zip(jax.tree.leaves(saved[2].model_variables()), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    lines = [r.getMessage() for r in caplog.records]
    assert any("best/4 cannot be restored" in line for line in lines), lines
    assert any("latest/4 cannot be restored" in line for line in lines), lines
    assert workdir.checkpoint_steps("best") == [4]  # read-only: evaluation moves nothing


def test_unreadable_step_metadata_alone_loses_nothing(tiny_config, two_checkpoints):
    """Orbax's per-step metadata (timestamps, handler names) is not needed to read the arrays."""
    workdir, states, mesh = two_checkpoints
    (workdir.latest_dir / "4" / "_CHECKPOINT_METADATA").write_text("{oops")
    restored, next_element = _restore(tiny_config, workdir, mesh)
    assert int(restored.step) == 4 and next_element == 9
    for a, b in zip(jax.tree.leaves(states[4]), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_a_kill_inside_an_async_save_leaves_a_step_the_next_run_ignores(tiny_config, caplog):
    """SIGKILL while step 4 is being written: the next run sees step 2 only, and tidies up."""
    import os
    import signal
    import subprocess
    import sys

    workdir = Workdir(tiny_config.workdir)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, str(root / "tests" / "engine" / "save_then_hang.py"), str(workdir.root)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(root)},
    )
    try:
        assert child.stdout.readline().strip() == "saving"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    leftovers = [p.name for p in workdir.latest_dir.iterdir()]
    assert "2" in leftovers and any(name.startswith("4.orbax-checkpoint-tmp") for name in leftovers)
    assert workdir.checkpoint_steps("latest") == [2]
    with caplog.at_level(logging.WARNING, logger="engine.checkpoints"):
        restored, next_element = _restore(tiny_config.replace(in_channels=1), workdir, make_mesh(1))
    assert int(restored.step) == 2 and next_element == 3
    assert any("never finished" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in workdir.latest_dir.iterdir()) == ["2"]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only), unmounted afterwards."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here ({done.stderr.decode().strip()})"
        if os.environ.get("CI"):  # CI runs as root: a mount that fails there is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_full_disk_fails_the_save_in_one_line_and_keeps_the_previous_step(
    tiny_config, small_disk
):
    mesh = make_mesh(1)
    workdir = Workdir(small_disk / "run")
    checkpoints = RunCheckpoints(workdir)
    saved = {step: _state(tiny_config, mesh, float(step), step) for step in (2, 4)}
    checkpoints.save_latest(saved[2])
    checkpoints.wait()
    filler = _fill(small_disk)
    with pytest.raises(CheckpointError) as caught:
        checkpoints.save_latest(saved[4])
        checkpoints.wait()
    message = str(caught.value)
    assert "latest/4 failed" in message and "No space left on device" in message, message
    assert "step 2, unharmed" in message and "\n" not in message
    checkpoints.close()
    filler.unlink()
    assert workdir.checkpoint_steps("latest") == [2]
    restored = RunCheckpoints(workdir)
    state = restored.restore_latest(_state(tiny_config, mesh, 0.0, 0))
    restored.close()
    for a, b in zip(jax.tree.leaves(saved[2]), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
