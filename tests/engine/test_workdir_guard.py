"""One process per workdir (lock file, stale locks) and which config changes a resume allows."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from engine.config import RESUME_FREE, TrainConfig, field_names
from engine.resume import resume_differences
from engine.workdir_lock import LOCK_NAME, WorkdirBusyError, WorkdirLock


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    """A live process holds the lock: another process is refused with its pid and host."""
    code = (
        "import sys, time; from engine.workdir_lock import WorkdirLock\n"
        f"lock = WorkdirLock({str(tmp_path)!r}); lock.acquire()\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkdirBusyError) as caught:
            WorkdirLock(tmp_path).acquire()
        message = str(caught.value)
        assert f"process {holder.pid} on {socket.gethostname()}" in message
        assert "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    # The holder was SIGKILLed: its lock is stale now and is taken over.
    with WorkdirLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()  # released


def _write_lock(tmp_path, **fields):
    (tmp_path / LOCK_NAME).write_text(json.dumps(fields))


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(tmp_path, pid=dead.pid, host=socket.gethostname(), start=None)
    with caplog.at_level(logging.WARNING, logger="engine.workdir_lock"), WorkdirLock(tmp_path):
        pass
    assert any(
        f"process {dead.pid}" in r.getMessage() and "stale" in r.getMessage()
        for r in caplog.records
    )


def test_reused_pid_is_told_apart_by_its_start_time(tmp_path):
    """Our own pid with another start time: the holder died and the pid was reused."""
    _write_lock(tmp_path, pid=os.getppid(), host=socket.gethostname(), start="1")
    with WorkdirLock(tmp_path) as lock:
        assert lock.held


def test_lock_of_another_host_is_refused_with_the_file_to_delete(tmp_path):
    _write_lock(tmp_path, pid=1234, host="some-other-host", since="2026-01-01")
    with pytest.raises(WorkdirBusyError, match=r"process 1234 on host some-other-host.*delete"):
        WorkdirLock(tmp_path).acquire()


def _resolved(config: TrainConfig, **extra):
    base = {
        "num_classes": 4,
        "class_names": ["A", "B", "C", "D"],
        "global_batch_size": 16,
        "train_examples": 64,
        "metadata": {"input_size": 32, "mean": [0.5]},
    }
    return json.loads(json.dumps(config.to_dict() | base | extra, default=str))


@pytest.mark.parametrize(
    ("change", "extra"),
    [
        ({"batch_size": 32}, {"global_batch_size": 32}),
        ({"lr": 0.01}, {}),
        ({"model": "resnet18"}, {}),
        ({"dataset": "synthetic"}, {}),
        ({"augment": True}, {}),
        ({"dtype": "bfloat16"}, {}),
        ({}, {"train_examples": 63}),  # the data changed under the same flags
        ({}, {"metadata": {"input_size": 32, "mean": [0.4]}}),
    ],
)
def test_resume_refuses_changes_that_break_exactness(tiny_config, change, extra):
    old = _resolved(tiny_config)
    new = _resolved(tiny_config.replace(**change), **extra)
    exact, _ = resume_differences(old, new)
    names = [*change, *extra]
    assert len(exact) == len(names) and all(
        any(line.startswith(n) for line in exact) for n in names
    ), exact


def test_resume_allows_harmless_changes(tiny_config):
    changed = tiny_config.replace(
        log_every=7,
        eval_every=9,
        checkpoint_every=3,
        progress=True,
        steps=40,
        workers=2,
        final_split="test",
        data_dir="/moved",
    )
    exact, free = resume_differences(_resolved(tiny_config), _resolved(changed))
    assert exact == [] and len(free) == 8


def test_a_field_missing_from_an_older_config_counts_as_its_default(tiny_config):
    old = _resolved(tiny_config)
    del old["label_smoothing"], old["train_examples"]
    assert resume_differences(old, _resolved(tiny_config)) == ([], [])
    exact, _ = resume_differences(old, _resolved(tiny_config.replace(label_smoothing=0.1)))
    assert exact == ["label_smoothing: 0.0 -> 0.1"]


def test_resume_free_names_are_config_fields():
    assert RESUME_FREE <= set(field_names())
