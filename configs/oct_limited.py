"""Paper: 4-class OCT 'limited' model, 1,000 images per class (93.4% reported).

    python -m launch.train --preset=oct_limited --data_dir=DIR/OCT2017 --devices=8

The paper's recipe (configs/recipes.py) on the published archive.
"""

from configs import recipes

CONFIG = recipes.PAPER | {"dataset": "oct", "max_per_class": 1000, "workdir": "runs/oct_limited"}
SMOKE = recipes.SMOKE
