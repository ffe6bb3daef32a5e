"""SmallCNN: a few Conv-BN-ReLU stages; for tests, smoke runs and the synthetic data set.

Same template and contract as the ImageNet families: returns ``(logits, extras)`` with
``stem``, ``stage1``..``stageN`` and ``pre_logits`` in ``extras``.
"""

from __future__ import annotations

import itertools

import jax
from flax import nnx

from models.layers import ConvBN, global_avg_pool, max_pool
from models.metadata import WeightMetadata
from models.registry import register_model


class SmallCNN(nnx.Module):
    def __init__(
        self,
        *,
        num_classes: int = 4,
        in_channels: int = 3,
        widths: tuple[int, ...] = (8, 16, 32),
        rngs: nnx.Rngs,
    ):
        self.stem = ConvBN(in_channels, widths[0], 3, stride=2, padding=1, rngs=rngs)
        self.stages = nnx.List(
            [ConvBN(a, b, 3, stride=1, padding=1, rngs=rngs) for a, b in itertools.pairwise(widths)]
        )
        self.head = nnx.Linear(widths[-1], num_classes, rngs=rngs)
        self.num_features = widths[-1]

    def __call__(self, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        extras = {}
        x = self.stem(x)
        extras["stem"] = x
        for i, stage in enumerate(self.stages):
            x = stage(max_pool(x, 2, 2))
            extras[f"stage{i + 1}"] = x
        pooled = global_avg_pool(x)
        extras["pre_logits"] = pooled
        return self.head(pooled), extras


def small_cnn(*, num_classes: int, in_channels: int, rngs: nnx.Rngs, **kwargs) -> SmallCNN:
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, rngs=rngs, **kwargs)


register_model(
    "small_cnn",
    small_cnn,
    WeightMetadata(
        arch="small_cnn",
        num_classes=4,
        input_size=64,
        crop_fraction=1.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        classifier_paths=("head",),
        first_conv_path="stem/conv",
        source="random initialisation (no pretrained weights)",
        license="Apache-2.0",
    ),
)
