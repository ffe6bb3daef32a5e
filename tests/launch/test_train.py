"""``python -m launch.train``: argument errors, the missing-data message, a smoke preset run."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.config import TrainConfig
from launch import train


def test_missing_oct_data_names_the_archive_and_layout(capsys):
    assert train.main(["--dataset=oct"]) == 2
    err = capsys.readouterr().err
    assert "doi:10.17632/rscbjbr9sj.2" in err and "kermany2018" in err
    assert "{CNV,DME,DRUSEN,NORMAL}" in err and "--data_dir" in err


def test_bad_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        train.main(["--dataset=oct_sample", "--transfer=scratch", "--pretrained=x.npz"])
    assert caught.value.code == 2
    assert "drop --pretrained" in capsys.readouterr().err


def test_missing_weight_file_is_named(tmp_path, capsys):
    code = train.main(
        [
            "--dataset=oct_sample",
            "--model=small_cnn",
            "--pretrained=nowhere.npz",
            f"--workdir={tmp_path}",
            "--devices=8",
            "--no-progress",
        ]
    )
    assert code == 2
    assert "nowhere.npz" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.foreign  # the ImageNet weights are converted from their torch file on first use
def test_demo_smoke_runs_with_real_weights(tmp_path, capsys):
    """The demo's code path (EfficientNet-Lite0 ImageNet weights, linear probe) at 64 px."""
    code = train.main(
        ["--preset=demo_smoke", f"--workdir={tmp_path}", "--devices=8", "--no-progress"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert str(tmp_path / "metrics.jsonl") in out
    report = json.loads((tmp_path / "eval" / "test" / "report.json").read_text())
    assert str(tmp_path / "eval" / "test" / "report.html") in out
    assert report["provenance"]["images"] == 32
    config = json.loads((tmp_path / "config.json").read_text())
    assert (
        config["pretrained"] == "efficientnet_lite0.in1k" and config["transfer"] == "linear_probe"
    )


def test_final_split_none_skips_the_report_and_summary_leads_with_balanced_metrics(
    tmp_path, capsys
):
    """``--final_split=None`` (as documented) trains, skips evaluation, and exits 0."""
    code = train.main(
        [
            "--dataset=oct_sample",
            "--model=small_cnn",
            "--pretrained=none",
            "--input_size=32",
            "--in_channels=1",
            "--cv_folds=3",
            "--final_split=None",
            f"--workdir={tmp_path}",
            "--devices=8",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert not (tmp_path / "eval").exists()
    assert "cross-valid.  balanced accuracy" in out and "recall: CNV" in out
    assert (tmp_path / "cv" / "report.html").is_file()


def test_final_split_flag_values():
    args = train.build_parser().parse_args(["--final_split=None"])
    assert train.config_from_args(args).final_split is None
    args = train.build_parser().parse_args([])
    config = train.config_from_args(args)
    assert config.final_split == "test" and config.pretrained == "auto"
    with pytest.raises(ValueError, match="final_split"):
        train.config_from_args(train.build_parser().parse_args(["--final_split=tset"]))


def test_help_lists_every_config_field_with_its_own_help(monkeypatch):
    """The one help text per field (engine.config.setting) reaches ``--help``."""
    monkeypatch.setenv("COLUMNS", "10000")  # argparse wraps at the terminal width otherwise
    text = " ".join(train.build_parser().format_help().split())
    for field in dataclasses.fields(TrainConfig):
        help_text = " ".join(field.metadata["help"].split())
        assert help_text, f"{field.name} has no help"
        assert f"--{field.name}" in text and help_text in text, field.name


def test_flag_forms_users_type():
    """``--name=VALUE``, ``--no-name`` booleans, comma lists, JSON dicts, None for optional
    fields."""
    args = train.build_parser().parse_args(
        [
            "--dataset=oct_sample",
            "--classes=NORMAL,CNV",
            "--no-progress",
            "--augment",
            '--model_kwargs={"drop_rate": 0.3}',
            "--steps=None",
            "--epochs=2.5",
            "--eval_every=none",
            "--input_size=64",
        ]
    )
    config = train.config_from_args(args)
    assert config.classes == ("NORMAL", "CNV") and config.augment and not config.progress
    assert config.model_kwargs == {"drop_rate": 0.3} and config.steps is None
    assert config.epochs == 2.5 and config.eval_every is None and config.input_size == 64
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["--steps=many"])


@pytest.mark.parametrize("spelling", ["None", "none", ""])
def test_explicit_none_pretrained_goes_with_scratch(spelling):
    """``--pretrained=None --transfer=scratch`` is accepted, also over a preset with weights."""
    for preset in ([], ["--preset=demo"]):
        args = train.build_parser().parse_args(
            [*preset, "--transfer=scratch", f"--pretrained={spelling}"]
        )
        config = train.config_from_args(args)
        assert config.pretrained is None and config.transfer == "scratch"
    # The same None written by hand (a config dict, a preset override) means none too.
    assert TrainConfig(transfer="scratch", pretrained=spelling).pretrained is None
    with pytest.raises(ValueError, match="drop --pretrained"):
        train.config_from_args(
            train.build_parser().parse_args(["--preset=demo", "--transfer=scratch"])
        )
