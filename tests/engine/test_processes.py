"""Runs in subprocesses: two JAX processes training together, and the SIGTERM path."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.inference import load_run
from engine.mesh import make_mesh
from engine.run_log import read_metrics
from engine.trainer import train
from engine.workdir import Workdir
from models.loading import flat_state

REPO = Path(__file__).resolve().parents[2]
TINY_FLAGS = [
    "--dataset=oct_sample",
    "--model=small_cnn",
    "--transfer=scratch",
    "--input_size=32",
    "--in_channels=1",
    "--batch_size=16",
    "--eval_batch_size=16",
    "--val_fraction=0.25",
    "--schedule=constant",
    "--no-progress",
    "--final_split=none",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str], log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # --devices decides
    return subprocess.Popen(
        [sys.executable, "-m", "launch.train", *TINY_FLAGS, *args],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_two_processes_train_together_like_one(tmp_path, tiny_config):
    """2 processes x 2 devices == 1 process x 4 devices on the same global batches."""
    port = _free_port()
    workdir = tmp_path / "two"
    common = [
        f"--coordinator_address=127.0.0.1:{port}",
        "--num_processes=2",
        "--devices=2",
        "--steps=3",
        "--eval_every=2",
        "--log_every=1",
        f"--workdir={workdir}",
    ]
    procs = [_launch([*common, f"--process_id={i}"], tmp_path / f"p{i}.log") for i in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    logs = "\n".join((tmp_path / f"p{i}.log").read_text()[-2000:] for i in range(2))
    assert codes == [0, 0], logs
    wd = Workdir(workdir)
    assert wd.checkpoint_steps("latest") == [2, 3] and wd.checkpoint_steps("best") == [2]
    versions = wd.read_config(), __import__("json").loads(wd.versions_path.read_text())
    assert versions[1]["process_count"] == 2 and versions[1]["device_count"] == 4

    single = tiny_config.replace(steps=3, eval_every=2, workdir=str(tmp_path / "one"))
    train(single, make_mesh(4))
    two, one = (
        flat_state(load_run(workdir, "latest").model),
        flat_state(load_run(single.workdir, "latest").model),
    )
    assert two.keys() == one.keys()
    for key in two:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)
    train_rows = [r for r in read_metrics(wd) if r.get("split") == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3]  # one writer (process 0)
    # The 2-process checkpoint resumes in one process on 8 devices (the data order restarts).
    resumed = train(single.replace(workdir=str(workdir), steps=4), make_mesh(8))
    assert resumed.resumed_from == 3 and resumed.step == 4


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    workdir = tmp_path / "run"
    log = tmp_path / "train.log"
    proc = _launch(
        [
            "--devices=8",
            "--steps=100000",
            "--log_every=1",
            "--eval_every=100000",
            f"--workdir={workdir}",
        ],
        log,
    )
    deadline = time.time() + 240
    while not any(r.get("split") == "train" for r in read_metrics(Workdir(workdir))):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, "training never logged a step"
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    wd = Workdir(workdir)
    stopped = [r for r in read_metrics(wd) if r.get("event") == "stopped"]
    assert len(stopped) == 1 and stopped[0]["reason"] == "SIGTERM"
    assert wd.checkpoint_steps("latest") == [stopped[0]["step"]]
    assert "stopped early (SIGTERM)" in log.read_text()
    assert load_run(workdir, "latest").step == stopped[0]["step"]
