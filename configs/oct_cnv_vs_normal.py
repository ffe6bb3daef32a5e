"""Paper: binary CNV vs normal (100.0% reported).

    python -m launch.train --preset=oct_cnv_vs_normal --data_dir=DIR/OCT2017 --devices=8

The paper's recipe (configs/recipes.py) on the published archive.
"""

from configs import recipes

CONFIG = recipes.PAPER | {
    "dataset": "oct",
    "classes": ("NORMAL", "CNV"),
    "workdir": "runs/oct_cnv_vs_normal",
}
SMOKE = recipes.SMOKE | {"classes": ("NORMAL", "CNV")}
