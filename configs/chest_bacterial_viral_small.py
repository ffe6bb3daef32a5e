"""The shared 150 pneumonia films, bacterial vs viral.

    python -m launch.train --preset=chest_bacterial_viral_small --devices=8

EfficientNet-Lite0 with its ImageNet weights, the solved linear probe (configs/recipes.py).
"""

from configs import recipes

CONFIG = recipes.SMALL | {
    "dataset": "chest_xray_pathogen",
    "data_dir": f"{recipes.SHARED_DATA}/chest_xray",
    "workdir": "runs/chest_bacterial_viral_small",
}
SMOKE = recipes.SMOKE | {"model": "small_cnn", "pretrained": None}
