"""Flax NNX model families, their registry, weight metadata and weight converters.

import models
net = models.create("resnet50", pretrained="resnet50.npz", num_classes=4)
logits, extras = net(images)   # float32 NHWC, normalised as models.metadata_for(...) says
"""

# Each family registers its models (and pretrained tags) when imported.
from models import efficientnet_lite as _efficientnet_lite  # noqa: F401
from models import inception_v3 as _inception_v3  # noqa: F401
from models import isl as _isl  # noqa: F401
from models import resnet as _resnet  # noqa: F401
from models import small_cnn as _small_cnn  # noqa: F401
from models.convert import efficientnet_lite as _lite0_in1k  # noqa: F401  (its pretrained tag)
from models.loading import WeightMismatchError, flat_state, load_flat_state
from models.metadata import WeightMetadata
from models.registry import (
    create,
    list_models,
    list_pretrained,
    metadata_for,
    register_model,
    register_pretrained,
)
from models.weights_file import WeightFileError

__all__ = [
    "WeightFileError",
    "WeightMetadata",
    "WeightMismatchError",
    "create",
    "flat_state",
    "list_models",
    "list_pretrained",
    "load_flat_state",
    "metadata_for",
    "register_model",
    "register_pretrained",
]
