"""Two JAX processes on this machine read disjoint shards that together cover the data set."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

READER = Path(__file__).with_name("two_process_reader.py")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_read_disjoint_covering_shards(tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("XLA_FLAGS", None)
    outs = [tmp_path / f"p{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(READER), str(port), str(i), str(outs[i])],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    for proc in procs:
        log, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, log.decode()[-3000:]
    first, second = (json.loads(o.read_text()) for o in outs)
    assert [first["process_index"], second["process_index"]] == [0, 1]
    # Training: one epoch of 20 examples, 2 per process per step; disjoint, together all.
    assert not set(first["train"]) & set(second["train"])
    assert sorted(first["train"] + second["train"]) == list(range(20))
    # Evaluation: global batches of 8 over 20 examples -> 3 steps, 4 padding slots, each once.
    assert first["global_shape"][0] == 8
    seen = [i for p in (first, second) for i, m in zip(p["eval_index"], p["eval_mask"]) if m]
    assert sorted(seen) == list(range(20))
    padding = [i for p in (first, second) for i, m in zip(p["eval_index"], p["eval_mask"]) if not m]
    assert padding == [-1] * 4
