"""The run's data policy (engine.run_data) and its typed record (engine.run_record)."""

from __future__ import annotations

import json

import pytest

from engine import run_data
from engine.config import TrainConfig
from engine.run_record import RunRecord
from models.metadata import WeightMetadata


class _Named:
    class_names = ("a",)


def test_eval_source_reopens_training_splits_as_training_did(monkeypatch):
    """--split=val/train use the run's carve and leak filter; test uses neither."""
    seen = {}
    monkeypatch.setattr(run_data, "open_dataset", lambda name, **kw: seen.update(kw) or _Named())
    config = TrainConfig(
        dataset="synthetic", val_fraction=0.3, seed=7, drop_leaked=True, max_per_class=5
    )
    for split, want in (
        ("val", (0.3, 7, True, None)),
        ("train", (0.3, 7, True, 5)),
        ("test", (0.0, 7, False, None)),
    ):
        run_data.open_split(config, split, classes=["a"])
        got = (seen["val_fraction"], seen["seed"], seen["drop_leaked"], seen["max_per_class"])
        assert got == want, split


def _config_json(**extra):
    meta = WeightMetadata(arch="small_cnn", num_classes=2, class_names=("a", "b"))
    return {
        "model": "small_cnn",
        "in_channels": 1,
        "num_classes": 2,
        "class_names": ["a", "b"],
        "metadata": json.loads(meta.to_json()),
        **extra,
    }


def test_record_of_an_old_config_takes_the_defaults():
    """A config.json written before newer fields existed still loads; missing ones default."""
    record = RunRecord.from_dict(_config_json(dataset="oct", no_longer_a_field=3))
    assert record.config.in_channels == 1 and record.config.model == "small_cnn"
    assert record.config.on_bad_image == TrainConfig().on_bad_image
    assert record.config.task == "classification"  # "auto" resolved from the data set
    assert record.class_names == ("a", "b") and record.num_classes == 2
    assert record.global_batch_size is None
    assert record.eval_batch_size == TrainConfig().batch_size
    assert record.eval_preprocess().channels == 1


def test_record_round_trips_and_names_the_file_on_bad_input():
    record = RunRecord.from_dict(_config_json(eval_batch_size=16, global_batch_size=8))
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert record.eval_batch_size == 16
    with pytest.raises(ValueError, match=r"run/config.json: missing keys \['metadata'\]"):
        RunRecord.from_dict(
            {k: v for k, v in _config_json().items() if k != "metadata"}, "run/config.json"
        )
    with pytest.raises(ValueError, match="run/config.json: 2 class names for num_classes=3"):
        RunRecord.from_dict(_config_json(num_classes=3), "run/config.json")
