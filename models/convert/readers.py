"""Safe readers for foreign weight files -> flat ``{name: np.ndarray}`` dicts.

Nothing here unpickles arbitrary objects: torch files are read with ``weights_only=True``,
which refuses pickles that carry code; safetensors and HDF5 hold no code at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from models.weights_file import WeightFileError, check_file

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")


def read_torch(path: str | Path) -> dict[str, np.ndarray]:
    """A torch ``.pth``/``.pt`` state dict (legacy or zip format) as numpy arrays."""
    path = Path(path)
    check_file(path)
    try:
        import torch  # optional and heavy (the 'weights' extra): only .pth files need it
    except ImportError as e:
        raise WeightFileError(
            f"{path}: reading .pth files needs torch; install the 'weights' extra "
            "(pip install -e '.[weights]')"
        ) from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if (
            "weights_only" in str(e)
            or "Unsupported global" in str(e)
            or "UnpicklingError" in type(e).__name__
        ):
            raise WeightFileError(
                f"{path}: refused: the pickle holds objects other than tensors "
                f"(possibly code); only plain state dicts are read ({msg})"
            ) from e
        raise WeightFileError(
            f"{path}: unreadable or truncated torch file ({type(e).__name__}: {msg})"
        ) from e
    return _state_dict_to_numpy(obj, path)


def _state_dict_to_numpy(obj: object, path: Path) -> dict[str, np.ndarray]:
    import torch  # optional and heavy: read_torch checked it is installed

    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightFileError(
            f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}"
        )
    out = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. version counters stored beside the tensors
        name = name.removeprefix("module.")
        out[name] = (
            value.detach().to(torch.float32 if value.is_floating_point() else value.dtype).numpy()
        )
    if not out:
        raise WeightFileError(f"{path}: the state dict holds no tensors")
    return out


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    check_file(path)
    try:
        from safetensors.numpy import load_file  # optional: only .safetensors files need it
    except ImportError as e:
        raise WeightFileError(
            f"{path}: reading .safetensors needs the 'safetensors' package"
        ) from e
    try:
        tensors = load_file(str(path))
    except Exception as e:
        raise WeightFileError(f"{path}: unreadable or truncated safetensors file ({e})") from e
    return {k.removeprefix("module."): v for k, v in tensors.items()}


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Dispatch on the suffix: ``.safetensors`` or a torch file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return read_torch(path)
