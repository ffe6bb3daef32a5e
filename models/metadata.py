"""Per-weight-set metadata: everything needed to feed a network the inputs it was trained on.

The input pipeline reads preprocessing from here (never from constants of its own), and the
converted weight file carries one of these, so a file is self-describing.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# "Inception" / Keras-style scaling: x / 127.5 - 1, i.e. mean = std = 0.5 on [0, 1] inputs.
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")


@dataclasses.dataclass(frozen=True)
class WeightMetadata:
    """Describes one weight set (e.g. ``"inception_v3.keras_in1k"``).

    Inputs are float32 NHWC: pixels scaled to [0, 1], then ``(x - mean) / std`` per channel,
    channels in ``channel_order``. ``crop_fraction`` is the centre-crop ratio used at
    evaluation (resize the shorter side to ``input_size / crop_fraction``, crop ``input_size``).
    """

    arch: str
    tag: str = "random"
    num_classes: int = 1000
    in_channels: int = 3
    input_size: int = 224
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: str = "RGB"
    # Prefixes of the classifier parameters (several when there is an auxiliary head):
    # re-initialised when the class count changes.
    classifier_paths: tuple[str, ...] = ("head",)
    first_conv_path: str = "stem/conv"
    source: str = ""
    license: str = ""
    class_names: tuple[str, ...] = ()
    # Architecture options the weights need (e.g. Inception-V3's avg-pool padding rule,
    # which differs between Keras and torchvision): passed to the model builder by create().
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {INTERPOLATIONS}")
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std must have the same length")
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    def replace(self, **changes: Any) -> WeightMetadata:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WeightMetadata:
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown metadata fields {sorted(unknown)}")
        for key in ("mean", "std", "class_names", "classifier_paths"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)
