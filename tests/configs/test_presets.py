"""Every shipped preset (and its smoke variant) loads, and its documented command builds it."""

from __future__ import annotations

import shlex
import types

import pytest

from configs import PRESETS, _from_module, preset_config, preset_names
from engine.config import TrainConfig
from launch.train import build_parser, config_from_args


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads(name):
    config = preset_config(name)
    assert isinstance(config, TrainConfig)
    assert TrainConfig.from_dict(config.to_dict()) == config
    if name.endswith("_smoke"):
        expected = (
            "oct_sample"
            if config.task == "classification"
            else ("isl_synthetic_a", "isl_synthetic_b")
        )
        assert config.dataset in expected and config.steps is not None and config.steps <= 10


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_documented_command_builds_the_preset(name):
    preset = PRESETS[name]
    argv = shlex.split(preset.command)
    assert argv[:3] == ["python", "-m", "launch.train"]
    config = config_from_args(build_parser().parse_args(argv[3:]))
    expected = preset.config()
    data_dir = next((a.split("=", 1)[1] for a in argv if a.startswith("--data_dir=")), None)
    # The paper's presets take the archive's place from the command; *_small ones carry it.
    assert config == expected.replace(data_dir=data_dir or expected.data_dir)


def test_paper_presets_follow_the_paper():
    for name in (
        "oct_full",
        "oct_limited",
        "oct_cnv_vs_normal",
        "chest_pneumonia",
        "chest_bacterial_viral",
    ):
        config = preset_config(name)
        assert (config.model, config.transfer, config.optimizer, config.lr, config.batch_size) == (
            "inception_v3",
            "linear_probe",
            "adam",
            1e-3,
            1000,
        )
        assert not config.augment
    assert preset_config("oct_limited").max_per_class == 1000
    assert preset_config("oct_dme_vs_normal").classes == ("NORMAL", "DME")


def test_flags_override_a_preset():
    args = build_parser().parse_args(
        ["--preset=oct_full", "--lr=0.01", "--classes=NORMAL,CNV", "--no-augment"]
    )
    config = config_from_args(args)
    assert (
        config.lr == 0.01 and config.classes == ("NORMAL", "CNV") and config.model == "inception_v3"
    )


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("oct_fulll")


def test_every_config_module_names_its_own_preset_in_its_command():
    for name, preset in PRESETS.items():
        assert f"--preset={name}" in preset.command or (
            name == "demo" and "--demo" in preset.command
        )
        assert preset.description and not preset.description.startswith("python")


def test_a_config_module_without_a_command_is_refused():
    module = types.ModuleType("configs.broken", "Something, but no command.")
    module.CONFIG, module.SMOKE = {}, {}
    with pytest.raises(ValueError, match="configs/broken.py: the docstring"):
        _from_module("broken", module)
