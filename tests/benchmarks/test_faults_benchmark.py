"""The fault soak, short: one kill inside a save, one truncated checkpoint, one SIGTERM."""

from __future__ import annotations

import json

import pytest

from benchmarks import faults


@pytest.mark.slow
def test_three_faults_end_bitwise_equal_to_an_uninterrupted_run(tmp_path, capsys):
    code = faults.main(
        [
            "--faults=3",
            "--kinds=kill_in_save,truncate,sigterm",
            "--steps=60",
            f"--workdir={tmp_path}",
        ]
    )
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert code == 0, rows
    assert rows["faults_injected"]["value"] == 3 and rows["resumes"]["value"] == 3
    assert rows["faults_injected"]["by_kind"] == {
        "sigkill": 0,
        "sigterm": 1,
        "kill_in_save": 1,
        "truncate": 1,
    }
    assert rows["faults_injected"]["saves_interrupted"] == 1  # the kill landed inside a save
    assert rows["bitwise_identical_checkpoints"]["final_identical"] is True
    assert (
        rows["bitwise_identical_checkpoints"]["value"]
        == rows["bitwise_identical_checkpoints"]["of"]
    )
    # Only the truncated checkpoint's interval may be lost (0 when it was a SIGTERM save's).
    assert 0 <= rows["committed_steps_lost"]["value"] <= 5
    damaged = list((tmp_path / "faulted" / "checkpoints" / "damaged").iterdir())
    assert len(damaged) == 1 and damaged[0].name.startswith("latest-")
