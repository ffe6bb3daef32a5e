"""Paper: chest X-ray bacterial vs viral pneumonia (90.7% reported).

    python -m launch.train --preset=chest_bacterial_viral --data_dir=DIR/chest_xray --devices=8

The paper's recipe (configs/recipes.py) on the published archive.
"""

from configs import recipes

CONFIG = recipes.PAPER | {"dataset": "chest_xray_pathogen", "workdir": "runs/chest_bacterial_viral"}
SMOKE = recipes.SMOKE
