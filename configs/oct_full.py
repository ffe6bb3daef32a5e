"""Paper: 4-class OCT model, all training images (96.6% accuracy reported).

    python -m launch.train --preset=oct_full --data_dir=DIR/OCT2017 --devices=8

The paper's recipe (configs/recipes.py) on the published archive.
"""

from configs import recipes

CONFIG = recipes.PAPER | {"dataset": "oct", "workdir": "runs/oct_full"}
SMOKE = recipes.SMOKE
