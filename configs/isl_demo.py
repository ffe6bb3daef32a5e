"""In Silico Labeling on synthetic condition A (nuclei, cell body, dead-cell marker from a
7-plane bright-field z-stack), 8 simulated CPU devices, then the test wells.

    python -m launch.train --preset=isl_demo

The ISL recipe (configs/recipes.py): a small network trained from scratch, 300 steps.
"""

from configs import recipes

CONFIG = recipes.ISL | {
    "dataset": "isl_synthetic_a",
    "steps": 300,
    "eval_every": 100,
    "workdir": "runs/isl_demo",
}
SMOKE = recipes.ISL_SMOKE
