"""Baseline for isl_transfer_b: the same wells of condition B and the same steps, from random
initialisation.

python -m launch.train --preset=isl_scratch_b --devices=8
"""

from configs import recipes

CONFIG = recipes.ISL_B | {"workdir": "runs/isl_scratch_b"}
SMOKE = recipes.ISL_B_SMOKE
