"""Soak test of fault tolerance: a small training run hit by N faults at random moments.

    python -m launch.benchmark --what=faults --faults=50

A reference run (small_cnn on the synthetic set, ``--steps`` steps, a checkpoint every
``--checkpoint_every``) trains once without interruption, keeping every checkpoint. The same
run is then started in another workdir and hit by ``--faults`` faults, each followed by a
resume (``python -m launch.train`` again, in a subprocess as a user would); the kinds come
equally often, in a random order (``--seed``):

- ``sigkill``: SIGKILL at a random moment of training (a lost VM);
- ``sigterm``: SIGTERM at a random moment (a preemption notice: save and stop);
- ``kill_in_save``: SIGKILL while an asynchronous checkpoint is being written (an
  uncommitted ``*.orbax-checkpoint-tmp`` folder is on disk at that moment);
- ``truncate``: SIGKILL, then the biggest file of the newest checkpoint cut to 100 bytes
  (a bad disk): the resume must name it and fall back to the previous checkpoint.

After each fault the newest checkpoint that the resume will use is compared, array by array
and the data-iterator position byte by byte, with the reference run's checkpoint of the same
step; at the end the final checkpoints are compared the same way. Printed (JSON lines):
faults injected (by kind), resumes, bitwise-identical checkpoints (of those compared),
committed steps lost (steps of committed checkpoints the resume could not use: only
``truncate`` may lose one interval) and steps redone (training progress logged before the
fault minus the step the resume started from; progress is logged every ``--log_every``
steps, so this is a lower bound within that).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from benchmarks.report import emit

KINDS = ("sigkill", "sigterm", "kill_in_save", "truncate")
REPO = Path(__file__).resolve().parents[1]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m launch.benchmark --what=faults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--faults", type=int, default=10, help="faults to inject")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default: 40 per fault, at least 120)",
    )
    parser.add_argument("--checkpoint_every", type=int, default=5)
    parser.add_argument("--log_every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault schedule")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds")
    parser.add_argument("--workdir", default=None, help="where both runs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdirs")
    return parser.parse_args(argv)


def _train_command(workdir: Path, args: argparse.Namespace, keep: int) -> list[str]:
    return [
        sys.executable, "-m", "launch.train",
        "--model=small_cnn", "--transfer=scratch", "--pretrained=none",
        "--dataset=synthetic", "--input_size=32", "--in_channels=1", "--batch_size=16",
        f"--steps={args.steps}", f"--eval_every={args.steps}",
        f"--checkpoint_every={args.checkpoint_every}", f"--log_every={args.log_every}",
        f"--keep_checkpoints={keep}", "--final_split=none", "--no-progress", "--devices=1",
        f"--workdir={workdir}",
    ]  # fmt: skip


def _start(command: list[str], log: Path) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    with log.open("a") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _rows(workdir: Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by SIGKILL
            continue
    return rows


def _logged_step(workdir: Path) -> int:
    steps = [r["step"] for r in _rows(workdir) if r.get("split") == "train" and "step" in r]
    return max(steps, default=0)


def _committed(workdir: Path) -> list[int]:
    latest = workdir / "checkpoints" / "latest"
    if not latest.is_dir():
        return []
    return sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit())


def _wait_training(proc: subprocess.Popen, workdir: Path, since: int, timeout: float = 300) -> bool:
    """Until the run steps past ``since`` with two committed checkpoints (one to fall back to
    when the newest is damaged); False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _logged_step(workdir) > since and len(_committed(workdir)) >= 2:
            return True
        time.sleep(0.05)
    raise TimeoutError(f"{workdir}: no training progress in {timeout} s")


def _kill_in_save(proc: subprocess.Popen, workdir: Path, timeout: float = 120) -> bool:
    """SIGKILL as soon as an uncommitted checkpoint folder appears; True if one was caught."""
    latest = workdir / "checkpoints" / "latest"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            names = os.listdir(latest)
        except FileNotFoundError:
            names = []
        if any(".orbax-checkpoint-tmp" in n for n in names):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return any(".orbax-checkpoint-tmp" in n for n in os.listdir(latest))
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return False


def _truncate_newest(workdir: Path) -> int | None:
    steps = _committed(workdir)
    if not steps:
        return None
    model = workdir / "checkpoints" / "latest" / str(steps[-1]) / "model"
    biggest = max((p for p in model.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with biggest.open("r+b") as f:
        f.truncate(100)
    return steps[-1]


def _checkpoint(workdir: Path, step: int) -> dict:
    """Every array of the "model" and "train" items, and the data-iterator files' text."""

    root = workdir / "checkpoints" / "latest" / str(step)
    out = {}
    with ocp.StandardCheckpointer() as reader:
        for item in ("model", "train"):
            restored = reader.restore(root / item)
            for path, leaf in jax.tree_util.tree_flatten_with_path(restored)[0]:
                out[f"{item}{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
    for file in sorted((root / "data_iter").glob("*.json")):
        out[f"data_iter/{file.name}"] = file.read_text()
    return out


def _identical(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(
        (a[k] == b[k]) if isinstance(a[k], str) else np.array_equal(a[k], b[k], equal_nan=True)
        for k in a
    )


def _resumed_from(workdir: Path, count: int) -> int | None:
    """Step of the ``count``-th "resumed" event in metrics.jsonl, once written."""
    events = [r for r in _rows(workdir) if r.get("event") == "resumed"]
    return events[count - 1]["step"] if len(events) >= count else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    args.steps = args.steps or max(120, 40 * args.faults)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"--kinds: unknown {unknown}; choose from {KINDS}")
    rng = random.Random(args.seed)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="kermany_faults_"))
    root.mkdir(parents=True, exist_ok=True)
    reference, faulted = root / "reference", root / "faulted"
    log = root / "train.log"
    start = time.perf_counter()

    proc = _start(_train_command(reference, args, keep=10**6), log)
    if proc.wait() != 0:
        raise SystemExit(f"the reference run failed; see {log}")
    reference_seconds = time.perf_counter() - start

    counts = {k: 0 for k in KINDS}
    resumes = identical = compared = committed_lost = redone = caught_in_save = 0
    command = _train_command(faulted, args, keep=2)
    proc = _start(command, log)
    progress = 0
    schedule = [kinds[i % len(kinds)] for i in range(args.faults)]  # every kind as often
    rng.shuffle(schedule)
    for kind in schedule:
        if not _wait_training(proc, faulted, since=progress):
            break  # finished before this fault: the run is too short for --faults
        if kind == "kill_in_save":
            caught_in_save += _kill_in_save(proc, faulted)
        else:
            time.sleep(rng.uniform(0.0, 1.5))
            proc.send_signal(signal.SIGTERM if kind == "sigterm" else signal.SIGKILL)
            proc.wait()
        counts[kind] += 1
        progress = max(_logged_step(faulted), max(_committed(faulted), default=0))
        newest = max(_committed(faulted), default=0)
        if kind == "truncate":
            _truncate_newest(faulted)
        proc = _start(command, log)
        resumes += 1
        while (resumed := _resumed_from(faulted, resumes)) is None:
            if proc.poll() is not None:
                raise SystemExit(f"resume {resumes} ended without resuming; see {log}")
            time.sleep(0.05)
        committed_lost += newest - resumed
        redone += max(progress - resumed, 0)
        if resumed in _committed(reference):
            compared += 1
            try:
                identical += _identical(
                    _checkpoint(faulted, resumed), _checkpoint(reference, resumed)
                )
            except (FileNotFoundError, ValueError):  # already replaced by a newer step
                compared -= 1
        progress = resumed
    if proc.wait() != 0:
        raise SystemExit(f"the last run failed; see {log}")
    final = args.steps
    compared += 1
    final_identical = _identical(_checkpoint(faulted, final), _checkpoint(reference, final))
    identical += final_identical
    injected = sum(counts.values())
    common = {
        "steps": args.steps,
        "checkpoint_every": args.checkpoint_every,
        "seconds": round(time.perf_counter() - start, 1),
        "reference_seconds": round(reference_seconds, 1),
    }
    emit(
        "faults_injected",
        injected,
        "faults",
        by_kind=counts,
        saves_interrupted=caught_in_save,
        **common,
    )
    emit("resumes", resumes, "runs")
    emit(
        "bitwise_identical_checkpoints",
        identical,
        "checkpoints",
        of=compared,
        final_identical=bool(final_identical),
    )
    emit("committed_steps_lost", committed_lost, "steps", truncations=counts["truncate"])
    emit("steps_redone", redone, "steps", note=f"lower bound within log_every={args.log_every}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    lost_ok = committed_lost <= counts["truncate"] * args.checkpoint_every
    ok = final_identical and identical == compared and injected == args.faults and lost_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
