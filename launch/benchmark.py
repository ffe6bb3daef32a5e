"""``python -m launch.benchmark --what=models|input|train|occlusion [...]``: prints JSON lines.

Each ``--what`` is a module in ``benchmarks/`` with a ``main(argv)``; the remaining flags
are its own (``--help`` after ``--what`` lists them).
"""

from __future__ import annotations

import argparse
import importlib
import sys

WHATS = ("models", "input", "train", "occlusion")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, add_help=False)
    parser.add_argument("--what", choices=WHATS, required=True)
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(f"benchmarks.{args.what}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
