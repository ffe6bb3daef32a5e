"""Input-pipeline throughput on the shared real images, against its ceiling and a PyTorch peer.

    python -m launch.benchmark --what=input [--data_dir ../shared/data/kermany] [--size 299]
                               [--threads 2] [--batch 32] [--rounds 3] [--channels 3]

Per data set (every OCT and chest X-ray file of the shared sample, train + test), images/s of:
- ``pipeline``: the full pipeline: open_dataset -> make_eval_iterator (Grain, ``--threads``
  read threads) -> batches placed on the device as jax.Arrays (block_until_ready);
- ``bare_loop`` (the ceiling on this machine): a thread pool of ``--threads`` that only
  decodes (PIL, reduced-size JPEG decoding) and resizes/crops the same files, nothing else;
- ``torch_dataloader``: a PyTorch DataLoader (``--threads`` worker processes, persistent,
  started before timing) whose Dataset does the bare loop's decode + resize per file.
All three run the same per-file work at ``--size`` px; ratios pipeline/bare (target >= 0.9)
and pipeline/torch (target >= 1.0); ``pipeline_prepared`` is the full pipeline reading a
``launch.prepare`` build of the same files. Contenders are interleaved over ``--rounds``
rounds (order rotated); ``value`` is the best round, ``ratio`` the median of the per-round
ratios (neighbouring runs share the load of this shared machine). Then, on the full-size normal
chest films, one thread: decode + resize + crop with reduced-size (draft) decoding vs full
decoding (target >= 3x), both through ``load_image``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from benchmarks.report import emit, machine
from data_pipelines.pipeline import make_eval_iterator
from data_pipelines.preprocess import PreprocessConfig, load_image
from data_pipelines.sources import open_dataset
from data_pipelines.tfds_build import prepare

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany"


def bare_decode_resize(path: str, size: int, channels: int, draft: bool = True) -> np.ndarray:
    """The minimum per-file work: decode (reduced-size when big) and resize+crop to ``size``."""
    short = round(size / 0.875)
    img = Image.open(path)
    if draft:
        scale = short / min(img.size)
        if scale < 0.5:
            img.draft(
                "L" if channels == 1 else img.mode,
                (int(img.size[0] * scale) + 1, int(img.size[1] * scale) + 1),
            )
    grey = img.mode == "L"
    img = img.convert("L" if channels == 1 or grey else "RGB")
    width, height = img.size
    side = min(width, height) * size / short
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    out = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, box=box))
    return np.repeat(out[:, :, None], 3, axis=-1) if channels == 3 and grey else out


class TorchFiles:
    """A map-style torch Dataset doing ``bare_decode_resize`` (module level: spawn-picklable)."""

    def __init__(self, paths: list[str], size: int, channels: int):
        self.paths, self.size, self.channels = paths, size, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import warnings

        import torch

        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(bare_decode_resize(self.paths[i], self.size, self.channels))


def _files(source) -> list[str]:
    return [r.path for r in source.records]


def _all_splits(name: str, data_dir: Path, repeat: int = 1):
    """Train + test of one data set as one source, its records ``repeat`` times over."""
    train = open_dataset(name, data_dir=data_dir, split="train")
    test = open_dataset(name, data_dir=data_dir, split="test")
    return train.replace_records((train.records + test.records) * repeat)


def run_pipeline(source, cfg, mesh, threads: int, batch: int) -> float:
    start = time.perf_counter()
    count = 0
    for b in make_eval_iterator(source, cfg, global_batch_size=batch, mesh=mesh, threads=threads):
        b["image"].block_until_ready()
        count += int(np.asarray(b["mask"]).sum())
    assert count == len(source), (count, len(source))
    return count / (time.perf_counter() - start)


def run_bare(paths: list[str], size: int, channels: int, threads: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        count = sum(1 for _ in pool.map(lambda p: bare_decode_resize(p, size, channels), paths))
    return count / (time.perf_counter() - start)


def run_torch(loader, n: int) -> float:
    start = time.perf_counter()
    count = sum(int(b.shape[0]) for b in loader)
    assert count == n
    return count / (time.perf_counter() - start)


def make_torch_loader(paths: list[str], size: int, channels: int, threads: int, batch: int):
    import torch

    torch.set_num_threads(1)
    return torch.utils.data.DataLoader(
        TorchFiles(paths, size, channels),
        batch_size=batch,
        num_workers=threads,
        persistent_workers=threads > 0,
        multiprocessing_context="spawn" if threads > 0 else None,
    )


def draft_speedup(paths: list[str], cfg, rounds: int) -> dict[str, list[float]]:
    """images/s per round of ``load_image`` with and without reduced-size decoding, one thread."""

    def run(draft: bool) -> Callable[[], float]:
        def timed_pass() -> float:
            start = time.perf_counter()
            for p in paths:
                load_image(p, cfg.replace(draft=draft))
            return len(paths) / (time.perf_counter() - start)

        return timed_pass

    return _interleaved({"draft_decode": run(True), "full_decode": run(False)}, rounds, "draft")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data_dir", type=Path, default=DEFAULT_DATA, help="the shared Kermany sample"
    )
    parser.add_argument(
        "--size", type=int, default=299, help="output side in pixels (crop fraction 0.875)"
    )
    parser.add_argument("--threads", type=int, default=2, help="decode threads / torch workers")
    parser.add_argument("--batch", type=int, default=32, help="batch size")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3, help="output channels")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved timing rounds (images/s: best; ratios: median per round)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="passes over the files per timed run (longer runs, less noise)",
    )
    parser.add_argument(
        "--datasets", nargs="*", default=["oct", "chest_xray"], help="data sets to time"
    )
    parser.add_argument(
        "--no_prepared",
        action="store_true",
        help="skip timing the pipeline on a launch.prepare build (pre-resized images)",
    )
    args = parser.parse_args(argv)

    info = machine()
    emit(
        "input/machine",
        info["device_count"],
        "devices",
        threads=args.threads,
        size=args.size,
        batch=args.batch,
        channels=args.channels,
        rounds=args.rounds,
        **info,
    )
    mesh = jax.make_mesh(
        (1,), ("data",), devices=jax.devices()[:1], axis_types=(jax.sharding.AxisType.Auto,)
    )
    cfg = PreprocessConfig(input_size=args.size, crop_fraction=0.875, channels=args.channels)
    scratch = Path(tempfile.mkdtemp(prefix="input_bench_"))
    try:
        _time_datasets(args, cfg, mesh, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _time_draft(args, cfg)
    return 0


def _prepared(name: str, data_dir: Path, short_side: int, scratch: Path, repeat: int):
    """The same files through a launch.prepare build with shorter side ``short_side``."""
    logging.getLogger("absl").setLevel(logging.WARNING)
    print(f"# {name}: preparing a TFDS build (shorter side {short_side})", file=sys.stderr)
    prepare(name, data_dir, scratch / name, short_side=short_side)
    return _all_splits(name, scratch / name, repeat)


def _time_datasets(args: argparse.Namespace, cfg, mesh, scratch: Path) -> None:
    for name in args.datasets:
        source = _all_splits(name, args.data_dir, args.repeat)
        paths = _files(source)
        print(
            f"# {name}: {len(paths)} files, warming the page cache and the workers", file=sys.stderr
        )
        run_bare(paths, args.size, args.channels, args.threads)  # page cache
        loader = make_torch_loader(paths, args.size, args.channels, args.threads, args.batch)
        run_torch(loader, len(paths))  # starts the persistent workers
        run_pipeline(source, cfg, mesh, args.threads, args.batch)  # compiles nothing, warms imports
        prepared = (
            None
            if args.no_prepared
            else _prepared(name, args.data_dir, cfg.resize_size, scratch, args.repeat)
        )
        # functools.partial binds this iteration's source, paths and loader now (a lambda would
        # read the loop variables when called).
        runs: dict[str, Callable[[], float]] = {
            "pipeline": functools.partial(
                run_pipeline, source, cfg, mesh, args.threads, args.batch
            ),
            "bare_loop": functools.partial(run_bare, paths, args.size, args.channels, args.threads),
            "torch_dataloader": functools.partial(run_torch, loader, len(paths)),
        }
        if prepared is not None:
            runs["prepared"] = functools.partial(
                run_pipeline, prepared, cfg, mesh, args.threads, args.batch
            )
        rates = _interleaved(runs, args.rounds, name)
        del runs, loader  # stops the torch loader's persistent workers before the next data set
        common = {
            "images": len(paths) // args.repeat,
            "repeat": args.repeat,
            "threads": args.threads,
            "size": args.size,
            "rounds": args.rounds,
        }
        best = {k: max(v) for k, v in rates.items()}
        emit(f"input/{name}/bare_loop", best["bare_loop"], "images/s", **common)
        emit(f"input/{name}/torch_dataloader", best["torch_dataloader"], "images/s", **common)
        for peer, target in (("bare_loop", 0.9), ("torch_dataloader", 1.0)):
            emit(
                f"input/{name}/pipeline",
                best["pipeline"],
                "images/s",
                vs=peer,
                ratio=_paired_ratio(rates["pipeline"], rates[peer]),
                target=target,
                ratio_of_best=round(best["pipeline"] / best[peer], 4),
                **common,
            )
        if prepared is not None:
            emit(
                f"input/{name}/pipeline_prepared",
                best["prepared"],
                "images/s",
                vs="pipeline",
                ratio=_paired_ratio(rates["prepared"], rates["pipeline"]),
                short_side=cfg.resize_size,
                **common,
            )


def _interleaved(
    runs: dict[str, Callable[[], float]], rounds: int, label: str
) -> dict[str, list[float]]:
    """Every contender once per round, the order rotated each round; rates per round."""
    rates: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            rates[k].append(runs[k]())
        print(
            f"# {label} round {r + 1}/{rounds}: "
            + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()),
            file=sys.stderr,
        )
    return rates


def _paired_ratio(ours: list[float], peer: list[float]) -> float:
    """Median over rounds of the ratio within a round (neighbours share the machine's load)."""
    return float(np.median(np.array(ours) / np.array(peer)))


def _time_draft(args: argparse.Namespace, cfg) -> None:
    """All normal films, then grouped by the DCT scale draft can use at this size (1/2, 1/4)."""
    films = sorted(str(p) for p in (args.data_dir / "chest_xray").glob("*/NORMAL/*.jpeg"))
    if not films:
        return
    groups: dict[str, list[str]] = {"all": films}
    for film in films:
        scale = min(Image.open(film).size) // cfg.resize_size
        denominator = 8 if scale >= 8 else 4 if scale >= 4 else 2 if scale >= 2 else 1
        groups.setdefault(f"dct_1_{denominator}", []).append(film)
    for group, paths in sorted(groups.items()):
        print(
            f"# draft vs full decoding on {len(paths)} normal chest films ({group})",
            file=sys.stderr,
        )
        rates = draft_speedup(paths * args.repeat, cfg, args.rounds)
        emit(
            f"input/chest_films/{group}/full_decode",
            max(rates["full_decode"]),
            "images/s",
            images=len(paths),
            threads=1,
        )
        emit(
            f"input/chest_films/{group}/draft_decode",
            max(rates["draft_decode"]),
            "images/s",
            vs="full_decode",
            ratio=_paired_ratio(rates["draft_decode"], rates["full_decode"]),
            target=3.0,
            images=len(paths),
            threads=1,
        )


if __name__ == "__main__":
    sys.exit(main())
