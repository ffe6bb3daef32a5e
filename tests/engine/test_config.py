"""TrainConfig validation, JSON round trip and the "auto" pretrained rule."""

from __future__ import annotations

import json

import pytest

from engine.config import TrainConfig
from engine.state import resolve_pretrained


def test_json_round_trip_keeps_tuples():
    config = TrainConfig(classes=("NORMAL", "CNV"), model_kwargs={"drop_rate": 0.3})
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.classes == ("NORMAL", "CNV")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"transfer": "scratch", "pretrained": "w.npz"}, "drop --pretrained"),
        ({"class_balanced_sampling": True, "class_weighting": "balanced"}, "not both"),
        ({"best_metric": "f1"}, "best_metric"),
        ({"classes": ("CNV",)}, "at least two"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_invalid_combinations_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_auto_class_weighting_balances_unequal_classes_only():
    config = TrainConfig()
    assert config.class_weighting == "auto" and config.best_metric == "balanced_accuracy"
    assert config.balanced_weighting([149, 56, 35, 150])
    assert not config.balanced_weighting([9, 9, 9, 9])
    assert not config.replace(class_weighting="none").balanced_weighting([149, 56])
    assert config.replace(class_weighting="balanced").balanced_weighting([9, 9])
    # Oversampling already balances: auto does not weight the loss on top of it.
    assert not config.replace(class_balanced_sampling=True).balanced_weighting([149, 56])


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="lerning_rate"):
        TrainConfig.from_dict({"lerning_rate": 0.1})


def test_auto_pretrained_picks_the_models_registered_weights():
    assert (
        resolve_pretrained(TrainConfig(model="efficientnet_lite0")).pretrained
        == "efficientnet_lite0.in1k"
    )
    assert (
        resolve_pretrained(TrainConfig(model="efficientnet_lite0", transfer="scratch")).pretrained
        is None
    )
    assert resolve_pretrained(TrainConfig(model="small_cnn")).pretrained is None  # none registered
    assert (
        resolve_pretrained(TrainConfig(model="small_cnn", pretrained="w.npz")).pretrained == "w.npz"
    )
