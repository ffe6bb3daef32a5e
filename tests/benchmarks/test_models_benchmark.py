"""benchmarks/models.py on the small CNN: parseable JSON lines with positive, consistent values."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import nnx

import models
from benchmarks import models as bench
from benchmarks.report import compiled_flops


def test_small_cnn_rows(capsys):
    assert bench.main(["--families", "small_cnn", "--batch", "2", "--repeat", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["models/machine"]["device_count"] == jax.device_count()
    for what, unit in [
        ("compile", "s"),
        ("forward", "images/s"),
        ("params", "params"),
        ("flops", "GFLOPs/image"),
    ]:
        row = by_name[f"models/small_cnn/{what}"]
        assert row["unit"] == unit and row["value"] > 0, row
        assert (row["input_size"], row["batch"]) == (64, 2)
    net = models.create("small_cnn")
    expected = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(net, nnx.Param)))
    assert by_name["models/small_cnn/params"]["value"] == expected
    # stem conv alone: 32x32 outputs x 3x3x3 taps x 8 filters x 2 flops (interior taps only)
    assert by_name["models/small_cnn/flops"]["value"] * 1e9 > 2 * 31 * 31 * 27 * 8


def test_flops_reader_accepts_list_and_dict():
    assert compiled_flops({"flops": 3.0}) == 3.0
    assert compiled_flops([{"flops": 1.0}, {"flops": 2.0}]) == 3.0
    assert np.isnan(compiled_flops(None))


def test_unknown_family_rejected(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--families", "no_such_net"])
    assert "no_such_net" in capsys.readouterr().err
