"""A few hundred OCT images (the shared 390-image training sample), 4 classes.

    python -m launch.train --preset=oct_small --devices=8

EfficientNet-Lite0 with its ImageNet weights, the solved linear probe (configs/recipes.py).
"""

from configs import recipes

CONFIG = recipes.SMALL | {
    "dataset": "oct",
    "data_dir": f"{recipes.SHARED_DATA}/oct",
    "workdir": "runs/oct_small",
}
SMOKE = recipes.SMOKE | {"model": "small_cnn", "pretrained": None}
