"""Paper: binary DME vs normal (98.2% reported).

    python -m launch.train --preset=oct_dme_vs_normal --data_dir=DIR/OCT2017 --devices=8

The paper's recipe (configs/recipes.py) on the published archive.
"""

from configs import recipes

CONFIG = recipes.PAPER | {
    "dataset": "oct",
    "classes": ("NORMAL", "DME"),
    "workdir": "runs/oct_dme_vs_normal",
}
SMOKE = recipes.SMOKE | {"classes": ("NORMAL", "DME")}
