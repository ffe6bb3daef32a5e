"""EfficientNet-Lite0 fine-tuned (top 2 stages + classifier, BatchNorm frozen, backbone lr x0.1)
on the bundled OCT sample: the modern alternative to the paper's linear probe.

    python -m launch.train --preset=demo_finetune --devices=8

The smoke variant keeps the real weights at 64 px.
"""

from configs import recipes

CONFIG = {
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
}
SMOKE = recipes.SMOKE | {
    "model": "efficientnet_lite0",
    "pretrained": "efficientnet_lite0.in1k",
    "input_size": 64,
}
