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
and pipeline/torch (target >= 1.0). Contenders are interleaved over ``--rounds`` rounds and
the best round kept (the machine is shared with other jobs). Then, on the full-size normal
chest films, one thread: decode + resize + crop with reduced-size (draft) decoding vs full
decoding (target >= 3x), both through ``load_image``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.report import emit, machine

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany"


def bare_decode_resize(path: str, size: int, channels: int, draft: bool = True) -> np.ndarray:
    """The minimum per-file work: decode (reduced-size when big) and resize+crop to ``size``."""
    short = round(size / 0.875)
    img = Image.open(path)
    if draft:
        scale = short / min(img.size)
        if scale < 0.5:
            img.draft("L" if channels == 1 else img.mode,
                      (int(img.size[0] * scale) + 1, int(img.size[1] * scale) + 1))
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


def _all_splits(name: str, data_dir: Path):
    from data_pipelines.sources import open_dataset

    train = open_dataset(name, data_dir=data_dir, split="train")
    test = open_dataset(name, data_dir=data_dir, split="test")
    return train.replace_records(train.records + test.records)


def run_pipeline(source, cfg, mesh, threads: int, batch: int) -> float:
    from data_pipelines.pipeline import make_eval_iterator

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
        TorchFiles(paths, size, channels), batch_size=batch, num_workers=threads,
        persistent_workers=threads > 0, multiprocessing_context="spawn" if threads > 0 else None,
    )


def draft_speedup(paths: list[str], cfg, rounds: int) -> tuple[float, float]:
    """images/s of ``load_image`` with and without reduced-size decoding, one thread."""
    from data_pipelines.preprocess import load_image

    best = {True: 0.0, False: 0.0}
    for _ in range(rounds):
        for draft in (True, False):
            start = time.perf_counter()
            for p in paths:
                load_image(p, cfg.replace(draft=draft))
            best[draft] = max(best[draft], len(paths) / (time.perf_counter() - start))
    return best[True], best[False]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA, help="the shared Kermany sample")
    parser.add_argument("--size", type=int, default=299, help="output side in pixels (crop fraction 0.875)")
    parser.add_argument("--threads", type=int, default=2, help="decode threads / torch workers")
    parser.add_argument("--batch", type=int, default=32, help="batch size")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3, help="output channels")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (best kept)")
    parser.add_argument("--datasets", nargs="*", default=["oct", "chest_xray"], help="data sets to time")
    parser.add_argument("--no_prepared", action="store_true",
                        help="skip timing the pipeline on a launch.prepare build (pre-resized images)")
    args = parser.parse_args(argv)

    import jax

    from data_pipelines.preprocess import PreprocessConfig

    info = machine()
    emit("input/machine", info["device_count"], "devices", threads=args.threads, size=args.size,
         batch=args.batch, channels=args.channels, rounds=args.rounds, **info)
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1],
                         axis_types=(jax.sharding.AxisType.Auto,))
    cfg = PreprocessConfig(input_size=args.size, crop_fraction=0.875, channels=args.channels)
    scratch = Path(tempfile.mkdtemp(prefix="input_bench_"))
    try:
        _time_datasets(args, cfg, mesh, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _time_draft(args, cfg)
    return 0


def _prepared(name: str, data_dir: Path, short_side: int, scratch: Path):
    """The same files through a launch.prepare build with shorter side ``short_side``."""
    import logging

    from data_pipelines.tfds_build import prepare

    logging.getLogger("absl").setLevel(logging.WARNING)
    print(f"# {name}: preparing a TFDS build (shorter side {short_side})", file=sys.stderr)
    prepare(name, data_dir, scratch / name, short_side=short_side)
    return _all_splits(name, scratch / name)


def _time_datasets(args: argparse.Namespace, cfg, mesh, scratch: Path) -> None:
    for name in args.datasets:
        source = _all_splits(name, args.data_dir)
        paths = _files(source)
        print(f"# {name}: {len(paths)} files, warming the page cache and the workers", file=sys.stderr)
        run_bare(paths, args.size, args.channels, args.threads)  # page cache
        loader = make_torch_loader(paths, args.size, args.channels, args.threads, args.batch)
        run_torch(loader, len(paths))  # starts the persistent workers
        run_pipeline(source, cfg, mesh, args.threads, args.batch)  # compiles nothing, warms imports
        prepared = None if args.no_prepared else _prepared(name, args.data_dir, cfg.resize_size, scratch)
        best = {"pipeline": 0.0, "bare_loop": 0.0, "torch_dataloader": 0.0, "prepared": 0.0}
        for r in range(args.rounds):
            best["pipeline"] = max(best["pipeline"], run_pipeline(source, cfg, mesh, args.threads, args.batch))
            best["bare_loop"] = max(best["bare_loop"], run_bare(paths, args.size, args.channels, args.threads))
            best["torch_dataloader"] = max(best["torch_dataloader"], run_torch(loader, len(paths)))
            if prepared is not None:
                best["prepared"] = max(best["prepared"], run_pipeline(prepared, cfg, mesh, args.threads, args.batch))
            print(f"# {name} round {r + 1}/{args.rounds}: {best}", file=sys.stderr)
        del loader
        common = {"images": len(paths), "threads": args.threads, "size": args.size}
        emit(f"input/{name}/bare_loop", best["bare_loop"], "images/s", **common)
        emit(f"input/{name}/torch_dataloader", best["torch_dataloader"], "images/s", **common)
        emit(f"input/{name}/pipeline", best["pipeline"], "images/s", vs="bare_loop",
             ratio=best["pipeline"] / best["bare_loop"], target=0.9, **common)
        emit(f"input/{name}/pipeline", best["pipeline"], "images/s", vs="torch_dataloader",
             ratio=best["pipeline"] / best["torch_dataloader"], target=1.0, **common)
        if prepared is not None:
            emit(f"input/{name}/pipeline_prepared", best["prepared"], "images/s", vs="pipeline",
                 ratio=best["prepared"] / best["pipeline"], short_side=cfg.resize_size, **common)


def _time_draft(args: argparse.Namespace, cfg) -> None:
    films = sorted(str(p) for p in (args.data_dir / "chest_xray").glob("*/NORMAL/*.jpeg"))
    if films:
        print(f"# draft vs full decoding on {len(films)} normal chest films", file=sys.stderr)
        fast, slow = draft_speedup(films, cfg, args.rounds)
        emit("input/chest_films/full_decode", slow, "images/s", images=len(films), threads=1)
        emit("input/chest_films/draft_decode", fast, "images/s", vs="full_decode", ratio=fast / slow,
             target=3.0, images=len(films), threads=1)


if __name__ == "__main__":
    sys.exit(main())
