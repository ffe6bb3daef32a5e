"""The recipes the experiment configs share: the paper's, the small-sample one, ISL's, smoke.

The paper's recipe (Kermany et al. 2018, STAR Methods; ../shared/docs/ANCHORS.md): ImageNet
Inception-V3, every convolution frozen, cached bottleneck features, a new softmax layer
trained with Adam at lr 1e-3, batches of 1,000, ~100 epochs, no augmentation, model
selection on a held-out partition. The paper configs keep its network, weights and frozen
features, and solve its softmax layer properly (engine.probe_fit: full-batch L-BFGS, balanced
class weights, L2 by patient-grouped cross-validation); add ``--probe_solver=steps
--class_weighting=none --best_metric=accuracy`` for the literal minibatch recipe.

The ``*_small`` configs are for a few hundred images (the 822-image development sample in
../shared/data/kermany): EfficientNet-Lite0 with its real ImageNet weights, the same solved
probe; their settings are the ones the nested cross-validation of ``launch.study`` chose on
training images only (docs/RESULTS.md). OCT images are grey; ``in_channels=1`` sums the first
convolution over RGB, which computes exactly what the RGB network computes on the grey image
repeated three times (Inception's mean/std are equal across channels), at a third of the
input cost.
"""

from __future__ import annotations

from typing import Any

# Inception-V3 ImageNet weights converted from Keras (what the paper's TensorFlow model used):
#   python -m launch.convert --source=keras --arch=inception_v3 \
#       --weights=inception_v3_weights_tf_dim_ordering_tf_kernels.h5 \
#       --out=weights/inception_v3.keras_in1k.npz
INCEPTION_WEIGHTS = "weights/inception_v3.keras_in1k.npz"

PAPER: dict[str, Any] = {
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
SMALL: dict[str, Any] = {
    "model": "efficientnet_lite0",
    "pretrained": "efficientnet_lite0.in1k",
    "transfer": "linear_probe",
    "in_channels": 1,
    "input_size": 224,
    "eval_batch_size": 32,
}

# Every smoke variant starts here: the same code path in seconds on the bundled OCT sample
# with a tiny input. It checks the plumbing, not the science.
SMOKE: dict[str, Any] = {
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

# In Silico Labeling (Christiansen et al., Cell 2018) on the synthetic wells of
# data_pipelines.isl_synthetic: the dense task family (engine.dense_task) through the same
# trainer. A small network (models/isl.py, width 8, 32 intensity bins instead of the paper's
# 256) so that it trains on a 2-core CPU in minutes; docs/RESULTS.md ("In Silico Labeling")
# holds the numbers.
ISL: dict[str, Any] = {
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
ISL_SMOKE: dict[str, Any] = SMOKE | {
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
ISL_B: dict[str, Any] = ISL | {
    "dataset": "isl_synthetic_b",
    "labels": ("DAPI_CONFOCAL", "MAP2_CONFOCAL"),
    "max_wells": 1,
    "val_fraction": 0.3,
    "steps": 200,
    "eval_every": 100,
}
ISL_B_SMOKE: dict[str, Any] = ISL_SMOKE | {
    "dataset": "isl_synthetic_b",
    "labels": ISL_B["labels"],
    "max_wells": 1,
    "val_fraction": 0.3,
}
