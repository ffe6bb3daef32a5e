"""README main job: EfficientNet-Lite0 from its real ImageNet weights, linear probe (the paper's
method, solved with cross-validated L2) on the bundled 80-image OCT sample, 8 simulated CPU
devices, then the test split.

    python -m launch.train --demo

``--demo`` is ``--preset=demo`` with ``--devices=8``. The smoke variant keeps the real weights
at 64 px.
"""

from configs import recipes

CONFIG = {
    "model": "efficientnet_lite0",
    "pretrained": "efficientnet_lite0.in1k",
    "transfer": "linear_probe",
    "dataset": "oct_sample",
    "in_channels": 1,
    "input_size": 224,
    "eval_batch_size": 16,
    "val_fraction": 0.25,
    "workdir": "runs/demo",
}
SMOKE = recipes.SMOKE | {
    "model": "efficientnet_lite0",
    "pretrained": "efficientnet_lite0.in1k",
    "input_size": 64,
}
