"""Transfer: isl_demo's network, a new MAP2 head, fine-tuned on --max_wells wells of synthetic
condition B (run isl_demo first).

    python -m launch.train --preset=isl_transfer_b --devices=8

Its baseline is isl_scratch_b (the same wells and steps from random initialisation).
"""

from configs import recipes

CONFIG = recipes.ISL_B | {
    "transfer": "finetune",
    "backbone_lr_scale": 1.0,
    "init_from": "runs/isl_demo",
    "workdir": "runs/isl_transfer_b",
}
SMOKE = recipes.ISL_B_SMOKE
