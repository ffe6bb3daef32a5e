"""Flax NNX model families, their registry, weight metadata and weight converters.

    import models
    net = models.create("resnet50", pretrained="resnet50.npz", num_classes=4)
    logits, extras = net(images)   # float32 NHWC, normalised as models.metadata_for(...) says
"""

from models import small_cnn as _small_cnn  # noqa: F401  (registers the family)
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

# Families register on import; keep this list in the same order as the files.
for _family in ("resnet", "inception_v3", "efficientnet_lite"):
    try:
        __import__(f"models.{_family}")
    except ModuleNotFoundError as _e:  # family not written yet
        if _e.name != f"models.{_family}":
            raise

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
