"""A few hundred chest films (the shared 230-film training sample), pneumonia vs normal.

    python -m launch.train --preset=chest_pneumonia_small --devices=8

EfficientNet-Lite0 with its ImageNet weights, the solved linear probe (configs/recipes.py).
"""

from configs import recipes

CONFIG = recipes.SMALL | {
    "dataset": "chest_xray",
    "data_dir": f"{recipes.SHARED_DATA}/chest_xray",
    "workdir": "runs/chest_pneumonia_small",
}
SMOKE = recipes.SMOKE | {"model": "small_cnn", "pretrained": None}
