"""Paper: binary drusen vs normal (99.0% reported).

    python -m launch.train --preset=oct_drusen_vs_normal --data_dir=DIR/OCT2017 --devices=8

The paper's recipe (configs/recipes.py) on the published archive.
"""

from configs import recipes

CONFIG = recipes.PAPER | {
    "dataset": "oct",
    "classes": ("NORMAL", "DRUSEN"),
    "workdir": "runs/oct_drusen_vs_normal",
}
SMOKE = recipes.SMOKE | {"classes": ("NORMAL", "DRUSEN")}
