"""Named run configurations: the paper's experiments, the README demo, and smoke variants.

Each preset records the exact command that runs it. ``NAME_smoke`` (every preset has one)
runs the same code path in seconds on the bundled OCT sample with a tiny input: it checks
the plumbing, not the science. Explicit flags override a preset's values.

The paper's recipe (Kermany et al. 2018, STAR Methods; ../shared/docs/ANCHORS.md): ImageNet
Inception-V3, every convolution frozen, cached bottleneck features, a new softmax layer
trained with Adam at lr 1e-3, batches of 1,000, ~100 epochs, no augmentation, model
selection on a held-out partition. The paper presets keep its network, weights and frozen
features, and solve its softmax layer properly (engine.probe_fit: full-batch L-BFGS, balanced
class weights, L2 by patient-grouped cross-validation); add ``--probe_solver=steps
--class_weighting=none --best_metric=accuracy`` for the literal minibatch recipe.

The ``*_small`` presets are for a few hundred images (the 822-image development sample in
../shared/data/kermany): EfficientNet-Lite0 with its real ImageNet weights, the same solved
probe; their settings are the ones the nested cross-validation of ``launch.study`` chose on
training images only (docs/RESULTS.md). OCT images are
grey; ``in_channels=1`` sums the first convolution over RGB, which computes exactly what the
RGB network computes on the grey image repeated three times (Inception's mean/std are equal
across channels), at a third of the input cost.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.config import TrainConfig

# Inception-V3 ImageNet weights converted from Keras (what the paper's TensorFlow model used):
#   python -m launch.convert --source=keras --arch=inception_v3 \
#       --weights=inception_v3_weights_tf_dim_ordering_tf_kernels.h5 --out=weights/inception_v3.keras_in1k.npz
INCEPTION_WEIGHTS = "weights/inception_v3.keras_in1k.npz"

_PAPER: dict[str, Any] = {
    "model": "inception_v3",
    "pretrained": INCEPTION_WEIGHTS,
    "transfer": "linear_probe",
    "in_channels": 1,
    "optimizer": "adam",
    "lr": 1e-3,
    "schedule": "constant",
    "batch_size": 1000,
    "epochs": 100,
    "val_fraction": 0.1,
    "augment": False,
    "eval_batch_size": 256,
}

SHARED_DATA = "../shared/data/kermany"
_SMALL: dict[str, Any] = {
    "model": "efficientnet_lite0",
    "pretrained": "efficientnet_lite0.in1k",
    "transfer": "linear_probe",
    "in_channels": 1,
    "input_size": 224,
    "eval_batch_size": 32,
}

_SMOKE: dict[str, Any] = {
    "dataset": "oct_sample",
    "data_dir": None,
    "model": "small_cnn",
    "pretrained": None,
    "input_size": 32,
    "in_channels": 1,
    "steps": 4,
    "epochs": None,
    "batch_size": 16,
    "eval_batch_size": 16,
    "eval_every": 2,
    "log_every": 2,
    "val_fraction": 0.25,
}


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    description: str
    command: str  # the exact command that runs it
    values: dict[str, Any]
    smoke: dict[str, Any] = dataclasses.field(default_factory=dict)  # on top of _SMOKE

    def config(self, *, smoke: bool = False, **overrides: Any) -> TrainConfig:
        values = {**self.values, **(_SMOKE | self.smoke if smoke else {}), **overrides}
        return TrainConfig(**values)


def _paper(name: str, description: str, data: str, **values: Any) -> Preset:
    return Preset(
        name,
        description,
        f"python -m launch.train --preset={name} --data_dir={data} --workdir=runs/{name} --devices=8",
        {**_PAPER, **values, "workdir": f"runs/{name}"},
        smoke={"classes": values["classes"]} if values.get("classes") else {},
    )


def _small(name: str, description: str, data: str, **values: Any) -> Preset:
    return Preset(
        name,
        description,
        f"python -m launch.train --preset={name} --devices=8",
        {**_SMALL, **values, "data_dir": f"{SHARED_DATA}/{data}", "workdir": f"runs/{name}"},
        smoke={"model": "small_cnn", "pretrained": None},
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _paper(
            "oct_full",
            "Paper: 4-class OCT model, all training images (96.6% accuracy reported).",
            "DIR/OCT2017",
            dataset="oct",
        ),
        _paper(
            "oct_limited",
            "Paper: 4-class OCT 'limited' model, 1,000 images per class (93.4% reported).",
            "DIR/OCT2017",
            dataset="oct",
            max_per_class=1000,
        ),
        _paper(
            "oct_cnv_vs_normal",
            "Paper: binary CNV vs normal (100.0% reported).",
            "DIR/OCT2017",
            dataset="oct",
            classes=("NORMAL", "CNV"),
        ),
        _paper(
            "oct_dme_vs_normal",
            "Paper: binary DME vs normal (98.2% reported).",
            "DIR/OCT2017",
            dataset="oct",
            classes=("NORMAL", "DME"),
        ),
        _paper(
            "oct_drusen_vs_normal",
            "Paper: binary drusen vs normal (99.0% reported).",
            "DIR/OCT2017",
            dataset="oct",
            classes=("NORMAL", "DRUSEN"),
        ),
        _paper(
            "chest_pneumonia",
            "Paper: chest X-ray pneumonia vs normal (92.8% reported).",
            "DIR/chest_xray",
            dataset="chest_xray",
        ),
        _paper(
            "chest_bacterial_viral",
            "Paper: chest X-ray bacterial vs viral pneumonia (90.7% reported).",
            "DIR/chest_xray",
            dataset="chest_xray_pathogen",
        ),
        _small(
            "oct_small",
            "A few hundred OCT images (the shared 390-image training sample), 4 classes.",
            "oct",
            dataset="oct",
        ),
        _small(
            "chest_pneumonia_small",
            "A few hundred chest films (the shared 230-film training sample), pneumonia vs normal.",
            "chest_xray",
            dataset="chest_xray",
        ),
        _small(
            "chest_bacterial_viral_small",
            "The shared 150 pneumonia films, bacterial vs viral.",
            "chest_xray",
            dataset="chest_xray_pathogen",
        ),
        Preset(
            "demo",
            "README main job: EfficientNet-Lite0 from its real ImageNet weights, linear probe (the paper's "
            "method, solved with cross-validated L2) on the bundled 80-image OCT sample, 8 simulated "
            "CPU devices, then the test split.",
            "python -m launch.train --demo",
            {
                "model": "efficientnet_lite0",
                "pretrained": "efficientnet_lite0.in1k",
                "transfer": "linear_probe",
                "dataset": "oct_sample",
                "in_channels": 1,
                "input_size": 224,
                "eval_batch_size": 16,
                "val_fraction": 0.25,
                "workdir": "runs/demo",
            },
            smoke={
                "model": "efficientnet_lite0",
                "pretrained": "efficientnet_lite0.in1k",
                "input_size": 64,
            },
        ),
        Preset(
            "demo_finetune",
            "EfficientNet-Lite0 fine-tuned (top 2 stages + classifier, BatchNorm frozen, backbone lr x0.1) "
            "on the bundled OCT sample: the modern alternative to the paper's linear probe.",
            "python -m launch.train --preset=demo_finetune --devices=8",
            {
                "model": "efficientnet_lite0",
                "pretrained": "efficientnet_lite0.in1k",
                "transfer": "finetune",
                "finetune_stages": 2,
                "bn_mode": "frozen",
                "backbone_lr_scale": 0.1,
                "dataset": "oct_sample",
                "in_channels": 1,
                "input_size": 224,
                "optimizer": "adamw",
                "lr": 1e-3,
                "weight_decay": 1e-4,
                "warmup_steps": 5,
                "batch_size": 16,
                "steps": 60,
                "eval_every": 20,
                "log_every": 5,
                "val_fraction": 0.25,
                "workdir": "runs/demo_finetune",
            },
            smoke={
                "model": "efficientnet_lite0",
                "pretrained": "efficientnet_lite0.in1k",
                "input_size": 64,
            },
        ),
    )
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """``PRESETS[name]`` (or its smoke variant, ``name_smoke``) with ``overrides`` applied."""
    smoke = name.endswith("_smoke")
    base = name.removesuffix("_smoke") if smoke else name
    if base not in PRESETS:
        known = ", ".join(sorted(PRESETS) + [f"{p}_smoke" for p in sorted(PRESETS)])
        raise ValueError(f"unknown preset {name!r}; known: {known}")
    return PRESETS[base].config(smoke=smoke, **overrides)


def preset_names() -> list[str]:
    return sorted(PRESETS) + sorted(f"{p}_smoke" for p in PRESETS)


# In Silico Labeling (Christiansen et al., Cell 2018) on the synthetic wells of
# data_pipelines.isl_synthetic: the dense task family (engine.dense_task) through the same
# trainer. A small network (models/isl.py, width 8, 32 intensity bins instead of the paper's
# 256) so that it trains on a 2-core CPU in minutes; docs/RESULTS.md ("In Silico Labeling") holds the numbers.
_ISL: dict[str, Any] = {
    "task": "isl",
    "model": "isl",
    "pretrained": None,
    "transfer": "scratch",
    "in_channels": 7,  # z planes
    "model_kwargs": {"width": 8, "num_bins": 32},
    "output_size": 24,  # training crops: 50 -> 24 pixels
    "optimizer": "adam",
    "lr": 3e-3,
    "schedule": "cosine",
    "warmup_steps": 20,
    "batch_size": 16,
    "eval_batch_size": 16,
    "augment": True,  # flips and quarter turns, identical for input and targets
    "best_metric": "pearson",
    "log_every": 25,
    "val_fraction": 0.2,  # whole wells
}
_ISL_SMOKE: dict[str, Any] = {
    "dataset": "isl_synthetic_a",
    "model": "isl",
    "pretrained": None,
    "input_size": None,
    "in_channels": 7,
    "steps": 4,
    "batch_size": 8,
    "eval_batch_size": 8,
    "eval_every": 2,
    "log_every": 2,
    "val_fraction": 0.2,
}
# Condition B: the new label (MAP2, a neuronal marker condition A never stained for) plus
# nuclei; 1, 2 or 4 training wells (--max_wells), the same step budget with and without A.
_ISL_B = {
    **_ISL,
    "dataset": "isl_synthetic_b",
    "labels": ("DAPI_CONFOCAL", "MAP2_CONFOCAL"),
    "max_wells": 1,
    "val_fraction": 0.3,
    "steps": 200,
    "eval_every": 100,
}

PRESETS.update(
    {
        p.name: p
        for p in (
            Preset(
                "isl_demo",
                "In Silico Labeling on synthetic condition A (nuclei, cell body, dead-cell marker "
                "from a 7-plane bright-field z-stack), 8 simulated CPU devices, then the test wells.",
                "python -m launch.train --preset=isl_demo",
                {
                    **_ISL,
                    "dataset": "isl_synthetic_a",
                    "steps": 300,
                    "eval_every": 100,
                    "workdir": "runs/isl_demo",
                },
                smoke=_ISL_SMOKE,
            ),
            Preset(
                "isl_transfer_b",
                "Transfer: isl_demo's network, a new MAP2 head, fine-tuned on --max_wells wells of "
                "synthetic condition B (run isl_demo first).",
                "python -m launch.train --preset=isl_transfer_b --devices=8",
                {
                    **_ISL_B,
                    "transfer": "finetune",
                    "backbone_lr_scale": 1.0,
                    "init_from": "runs/isl_demo",
                    "workdir": "runs/isl_transfer_b",
                },
                smoke=_ISL_SMOKE
                | {
                    "dataset": "isl_synthetic_b",
                    "labels": _ISL_B["labels"],
                    "max_wells": 1,
                    "val_fraction": 0.3,
                },
            ),
            Preset(
                "isl_scratch_b",
                "Baseline for isl_transfer_b: the same wells of condition B and the same steps, "
                "from random initialisation.",
                "python -m launch.train --preset=isl_scratch_b --devices=8",
                {**_ISL_B, "workdir": "runs/isl_scratch_b"},
                smoke=_ISL_SMOKE
                | {
                    "dataset": "isl_synthetic_b",
                    "labels": _ISL_B["labels"],
                    "max_wells": 1,
                    "val_fraction": 0.3,
                },
            ),
        )
    }
)
