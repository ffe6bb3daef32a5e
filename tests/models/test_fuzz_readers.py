"""Fuzzing the readers of untrusted files: random truncations and byte flips of real small
files must end in the documented error (WeightFileError, BadImageError) or a clean read,
never another exception, a hang or code run.

Each reader gets a real file the test writes (a kermany-jax ``.npz``, a ``.safetensors``, a
Keras-layout ``.h5``, torch ``.pth`` in the zip and the legacy format, a PNG and a JPEG);
hypothesis then cuts it short or flips a few bytes. Example counts stay small (the suite
runs on 2 cores); a SIGALRM guard turns a hang into a failure.
"""

from __future__ import annotations

import contextlib
import io
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_pipelines.integrity import BadImageError, image_file_problem
from data_pipelines.preprocess import PreprocessConfig, load_image
from models.weights_file import WeightFileError

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same cases every run: a failure is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
ARRAYS = {"conv/kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "conv/bias": np.ones(4)}


@contextlib.contextmanager
def _no_hang(seconds: int = 10):
    def fail(signum, frame):
        raise TimeoutError(f"reader still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def damaged(draw, original: bytes) -> bytes:
    """``original`` cut at a random length, or with 1-8 random bytes replaced."""
    if draw(st.booleans()):
        return original[: draw(st.integers(0, len(original) - 1))]
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def _fuzz(
    tmp_path: Path,
    name: str,
    original: bytes,
    read: Callable[[Path], object],
    documented: type[Exception],
) -> None:
    path = tmp_path / name
    outcomes = {"read": 0, "refused": 0}

    @EXAMPLES
    @given(data=damaged(original))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        with _no_hang():
            try:
                read(path)
            except documented as err:
                assert str(path) in str(err), err  # names the file
                outcomes["refused"] += 1
                return
        outcomes["read"] += 1

    check()
    assert outcomes["refused"] > 0  # the damage was seen at least once


def _npz(tmp_path: Path) -> bytes:
    import models
    from models import weights_file

    meta = models.metadata_for("small_cnn", num_classes=4, in_channels=1)
    return weights_file.save(tmp_path / "real.npz", ARRAYS, meta).read_bytes()


def test_fuzz_npz(tmp_path):
    from models import weights_file

    _fuzz(tmp_path, "w.npz", _npz(tmp_path), weights_file.load, WeightFileError)


def test_npz_with_a_damaged_entry_name_is_refused(tmp_path):
    """Found by the fuzzer: a flipped byte in ``__metadata__``'s name was a bare KeyError."""
    from models import weights_file

    data = _npz(tmp_path).replace(b"__metadata__.npy", b"_Xmetadata__.npy")
    (tmp_path / "w.npz").write_bytes(data)
    with pytest.raises(WeightFileError, match="w.npz"):
        weights_file.load(tmp_path / "w.npz")


def test_fuzz_safetensors(tmp_path):
    from safetensors.numpy import save

    from models.convert.readers import read_safetensors

    original = save({k: np.asarray(v, np.float32) for k, v in ARRAYS.items()})
    _fuzz(tmp_path, "w.safetensors", original, read_safetensors, WeightFileError)


def test_fuzz_keras_h5(tmp_path):
    import h5py

    from models.convert.keras_inception_v3 import read

    real = tmp_path / "real.h5"
    with h5py.File(real, "w") as f:
        f.attrs["layer_names"] = [b"conv2d"]
        group = f.create_group("conv2d")
        group.attrs["weight_names"] = [b"conv2d/kernel:0"]
        group.create_dataset("conv2d/kernel:0", data=np.ones((3, 3, 1, 2), np.float32))
    _fuzz(tmp_path, "w.h5", real.read_bytes(), read, WeightFileError)


@pytest.mark.foreign
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_fuzz_torch_pth(tmp_path, zipped):
    import torch

    from models.convert.readers import read_torch

    buffer = io.BytesIO()
    state = {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in ARRAYS.items()}
    torch.save(state, buffer, _use_new_zipfile_serialization=zipped)
    _fuzz(tmp_path, "w.pth", buffer.getvalue(), read_torch, WeightFileError)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_fuzz_image_decoder(tmp_path, fmt):
    from PIL import Image

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(buffer, fmt)
    cfg = PreprocessConfig(input_size=8, channels=1)
    suffix = ".png" if fmt == "PNG" else ".jpeg"

    def read(path: Path) -> object:
        problem = image_file_problem(path)  # the dataset-open check, then the decoder
        out = load_image(path, cfg)
        assert out.shape == (8, 8, 1) and out.dtype == np.uint8
        return problem

    _fuzz(tmp_path, "image" + suffix, buffer.getvalue(), read, BadImageError)
