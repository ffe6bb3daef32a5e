"""timm state dicts (``.pth`` read with ``weights_only=True``, or ``.safetensors``).

timm's ResNet and Inception-V3 tensor names equal torchvision's, so the routing is shared;
only the preprocessing defaults (set per family for ``source="timm"``) differ.
"""

from __future__ import annotations

from models.convert.torchvision import ARCHS, read, routed  # noqa: F401  (source API)

SOURCE = "timm"
convert, metadata = routed(SOURCE)
