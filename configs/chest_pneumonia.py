"""Paper: chest X-ray pneumonia vs normal (92.8% reported).

    python -m launch.train --preset=chest_pneumonia --data_dir=DIR/chest_xray --devices=8

The paper's recipe (configs/recipes.py) on the published archive.
"""

from configs import recipes

CONFIG = recipes.PAPER | {"dataset": "chest_xray", "workdir": "runs/chest_pneumonia"}
SMOKE = recipes.SMOKE
