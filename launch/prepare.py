"""``python -m launch.prepare --dataset=oct --manual_dir=DIR --data_dir=DIR``: TFDS ArrayRecord
build.

Reads the unpacked archive in ``--manual_dir`` (published layout; any split folders present)
and writes ``DATA_DIR/kermany_<dataset>/short<N>/1.0.0/`` with every image stored grey and
pre-resized to shorter side ``--short_side``. Training then reads it with
``--dataset=oct --data_dir=DATA_DIR`` (the chest build also serves chest_xray_pathogen and
chest_xray_3class). No TensorFlow needed; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import logging
import sys

from data_pipelines.tfds_build import prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", required=True, choices=("oct", "chest_xray"), help="which build"
    )
    parser.add_argument("--manual_dir", required=True, help="the unpacked archive")
    parser.add_argument("--data_dir", required=True, help="where the build is written")
    parser.add_argument(
        "--short_side",
        type=int,
        default=342,
        help="shorter side of the stored images in pixels (342 = 299 / 0.875)",
    )
    parser.add_argument(
        "--image_format",
        choices=("jpeg", "png"),
        default="jpeg",
        help="encoding of the stored images (jpeg quality 95, or lossless png)",
    )
    parser.add_argument(
        "--on_bad_image",
        choices=("error", "skip"),
        default="error",
        help="bad files: stop (error) or leave out and list in the log (skip)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    build_dir = prepare(
        args.dataset,
        args.manual_dir,
        args.data_dir,
        short_side=args.short_side,
        image_format=args.image_format,
        on_bad_image=args.on_bad_image,
    )
    print(f"prepared {args.dataset} in {build_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
