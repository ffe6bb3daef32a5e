"""``python -m launch.benchmark --what=models|input|train|occlusion|depthwise|faults [...]``:
JSON lines.

Each ``--what`` is a module in ``benchmarks/`` with a ``main(argv)``; the remaining flags
are its own (``--help`` after ``--what`` lists them).
"""

from __future__ import annotations

import argparse
import importlib
import sys

WHATS = ("models", "input", "train", "occlusion", "depthwise", "faults")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launch.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # --help after --what goes to that benchmark
    )
    parser.add_argument("--what", choices=WHATS, help="which benchmark to run")
    args, rest = parser.parse_known_args(argv)
    if args.what is None:
        parser.print_help()
        return 0 if {"-h", "--help"} & set(rest) else 2
    module = importlib.import_module(f"benchmarks.{args.what}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
