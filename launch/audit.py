"""``python -m launch.audit --dataset=NAME --data_dir=DIR [--strict] [--out=leaks.csv]``: leakage.

Reports, for every pair of splits present (train/val/test; val when the archive has a val/
folder or ``--val_fraction`` carves one), the patients found on both sides and the files whose
bytes are identical (SHA-256), with counts per class. Prints a table for people naming the
first ``--show`` leaked patients (with their files) and identical pairs, the rest counted;
``--out`` writes every leaked file as CSV (one row per file and reason); ``--json`` prints one
JSON object for machines instead of the table. ``--strict`` exits 1 when anything leaks (for
CI over a prepared data directory); the training side can remove leaked examples with
``--drop_leaked``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from data_pipelines.leakage import (
    LEAK_COLUMNS,
    PairAudit,
    audit_splits,
    leaked_files,
    records_by_patient,
)
from data_pipelines.records import ImageSource
from data_pipelines.sources import DATASETS, open_splits


def write_csv(path: Path, splits: dict[str, ImageSource], audits: list[PairAudit]) -> int:
    """Every leaked file of every pair as one CSV row each; returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LEAK_COLUMNS)
        writer.writeheader()
        for audit in audits:
            for row in leaked_files(splits, audit):
                writer.writerow(row)
                rows += 1
    return rows


def _table(name: str, splits: dict[str, ImageSource], audits: list[PairAudit], show: int) -> str:
    lines = [f"leakage audit: {name}"]
    for split, source in splits.items():
        lines.append(
            f"  {split:5s} {len(source):7d} examples, {len(source.patients()):6d} patients  "
            f"{source.counts()}"
        )
    for audit in audits:
        verdict = "LEAK" if audit.leaked else "clean"
        lines.append(f"  {audit.first} x {audit.second}: {verdict}")
        lines.append(
            f"    shared patients: {len(audit.shared_patients)}"
            + (f"  examples per class: {audit.patient_examples}" if audit.shared_patients else "")
        )
        named = audit.shared_patients[:show]
        files = {s: records_by_patient(splits[s], set(named)) for s in (audit.first, audit.second)}
        for patient in named:
            lines.append(f"      patient {patient}:")
            for split, records in files.items():
                for record in records[patient]:
                    label = splits[split].class_names[record.label]
                    lines.append(f"        {split:5s} {label:10s} {record.path}")
        if len(audit.shared_patients) > show:
            lines.append(
                f"      ... {len(audit.shared_patients) - show} more patients (see --out or --json)"
            )
        lines.append(
            f"    identical files: {len(audit.duplicates)}"
            + (f"  examples per class: {audit.duplicate_examples}" if audit.duplicates else "")
        )
        for first, second in audit.duplicates[:show]:
            lines.append(f"      {first} == {second}")
        if len(audit.duplicates) > show:
            lines.append(
                f"      ... {len(audit.duplicates) - show} more pairs (see --out or --json)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="data set name")
    parser.add_argument(
        "--data_dir", default=None, help="the unpacked archive (or a launch.prepare build)"
    )
    parser.add_argument(
        "--val_fraction",
        type=float,
        default=0.0,
        help="also audit the patient-level val split carved from train with this fraction",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the val carve")
    parser.add_argument(
        "--no_hashes", action="store_true", help="patients only; skip hashing file bytes"
    )
    parser.add_argument(
        "--on_bad_image",
        choices=("error", "skip"),
        default="error",
        help="bad files: stop (error) or leave out and list in the log (skip)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when any pair of splits leaks"
    )
    parser.add_argument(
        "--show",
        type=int,
        default=10,
        help="leaked patients (with their files) and identical pairs named per pair in the "
        "table; the rest are counted (default 10)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write every leaked file as CSV: " + ", ".join(LEAK_COLUMNS),
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    splits = open_splits(
        args.dataset,
        data_dir=args.data_dir,
        val_fraction=args.val_fraction,
        seed=args.seed,
        on_bad_image=args.on_bad_image,
    )
    audits = audit_splits(splits, hashes=not args.no_hashes)
    leaked = any(a.leaked for a in audits)
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": args.dataset,
                    "splits": {
                        s: {
                            "examples": len(src),
                            "patients": len(src.patients()),
                            "per_class": src.counts(),
                        }
                        for s, src in splits.items()
                    },
                    "pairs": [a.to_json() for a in audits],
                    "leaked": leaked,
                }
            )
        )
    else:
        print(_table(args.dataset, splits, audits, args.show))
    if args.out is not None:
        rows = write_csv(args.out, splits, audits)
        print(f"audit: {rows} leaked files written to {args.out}", file=sys.stderr)
    if leaked and args.strict:
        print("audit: leakage found (--strict)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
