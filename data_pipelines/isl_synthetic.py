"""A seeded, physically grounded synthetic In Silico Labeling set, written in the published layout.

The real ISL images (gs://in-silico-labeling/paper_data, ~2 GB for a sample) cannot be
fetched here, so tests and the demo use wells rendered from one geometry by simple optics:

Geometry (micrometres; pixel 0.5 um). Each cell is a refractive-index object on the
coverslip: a cytoplasm half-ellipsoid (index contrast ``dn_cell`` against the medium), a
membrane (a thin higher-index rim, ``dn_membrane``), a nucleus ellipsoid inside it
(``dn_nucleus`` on top). Two cell types: "neurons" (elongated soma, thicker, with one to two
thin neurites) and flat round "glia". A random subset of cells is dead: shrunken, rounded,
with a condensed (pyknotic) nucleus of higher index and the same DNA in a smaller volume.

Transmitted light at focal depth z (the input z-stack). For a weak phase object
phi(x, y) = 2 pi / lambda * sum(dn * thickness), the transport-of-intensity equation gives
the bright-field intensity at defocus z as ``I0 (1 - z lambda / (2 pi) laplacian(phi))``: a
phase object is invisible in focus and shows with opposite contrast above and below it. The
defocus also blurs: a Gaussian of sigma ``sqrt(sigma0^2 + (z NA / 2)^2)`` with
``sigma0 = 0.21 lambda / NA``. Then uneven illumination and shot noise (``photons``).

Fluorescence (the targets, MAXPROJECT as published), from the same geometry, blurred by the
confocal PSF and noised:
- ``DAPI_CONFOCAL`` (nuclei): DNA concentration x thickness, capped at the optical section
  (so condensed nuclei of dead cells are brighter);
- ``CELLMASK_CONFOCAL`` (cell body stain): cytoplasm + nucleus thickness, capped likewise;
- ``DEAD_CONFOCAL`` (dead-cell marker, a nuclear dye that only enters dead cells): the
  nuclei of dead cells only;
- ``MAP2_CONFOCAL`` (neuronal marker): soma and neurites of neurons only.

Two conditions, as the paper's transfer experiment needs:
- ``a``: sparser cells, 0.55 um light, NA 0.5, 7 planes 1 um apart; labels DAPI,
  CELLMASK, DEAD (no neuron marker).
- ``b``: denser cells, 0.65 um light, NA 0.4, 7 planes 1.5 um apart, dimmer and noisier;
  labels DAPI and MAP2, the label A lacks.

Everything is a function of (condition, seed): same arguments, same files. Images are
16-bit grey PNGs named as ``paper_data`` names them (``data_pipelines.isl_naming``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from data_pipelines.isl_naming import published_name

PIXEL_UM = 0.5
GENERATOR_VERSION = 1  # bump when the rendering changes: cached sets are keyed by it


@dataclasses.dataclass(frozen=True)
class Condition:
    """One lab's cells and microscope."""

    name: str
    lab: str
    train_wells: int
    test_wells: int
    size: int  # pixels per side
    cells: tuple[int, int]  # cells per well, uniform in [lo, hi]
    neuron_fraction: float
    dead_fraction: float
    wavelength_um: float
    na: float
    z_step_um: float
    z_planes: int
    photons: float  # mean photons per pixel in bright field (shot noise)
    illumination: float  # 0: even; >0: vignetting depth
    modality: str
    labels: tuple[str, ...]


CONDITIONS: dict[str, Condition] = {
    "a": Condition(
        "synthetic_a",
        "Synthetic",
        10,
        4,
        128,
        (10, 14),
        0.5,
        0.3,
        0.55,
        0.5,
        1.0,
        7,
        4000.0,
        0.10,
        "BRIGHTFIELD",
        ("DAPI_CONFOCAL", "CELLMASK_CONFOCAL", "DEAD_CONFOCAL"),
    ),
    "b": Condition(
        "synthetic_b",
        "Synthetic",
        6,
        4,
        128,
        (18, 24),
        0.5,
        0.2,
        0.65,
        0.4,
        1.5,
        7,
        1500.0,
        0.25,
        "BRIGHTFIELD",
        ("DAPI_CONFOCAL", "MAP2_CONFOCAL"),
    ),
}


@dataclasses.dataclass
class Cell:
    y: float
    x: float
    angle: float
    a: float  # semi-axes of the soma (um)
    b: float
    height: float
    nucleus: tuple[float, float, float, float, float]  # dy, dx, a, b, height
    neuron: bool
    dead: bool
    neurites: list[tuple[float, float]]  # (angle, length um)


def _sample_cells(rng: np.random.Generator, cond: Condition) -> list[Cell]:
    size_um = cond.size * PIXEL_UM
    count = int(rng.integers(cond.cells[0], cond.cells[1] + 1))
    cells: list[Cell] = []
    for _ in range(count * 20):  # rejection sampling: somata do not overlap much
        if len(cells) == count:
            break
        neuron = bool(rng.random() < cond.neuron_fraction)
        dead = bool(rng.random() < cond.dead_fraction)
        if neuron:
            a, b, height = rng.uniform(5.0, 7.0), rng.uniform(2.8, 3.6), rng.uniform(4.0, 5.5)
        else:
            a, b, height = rng.uniform(5.5, 7.5), rng.uniform(5.0, 7.0), rng.uniform(2.0, 3.0)
        if dead:  # shrunken and rounded
            a, b, height = 0.65 * max(a, b), 0.6 * max(a, b), height * 1.2
        y, x = rng.uniform(4.0, size_um - 4.0, size=2)
        if any(np.hypot(y - c.y, x - c.x) < 0.9 * (max(a, b) + max(c.a, c.b)) for c in cells):
            continue
        scale = 0.35 if dead else 0.55  # condensed nucleus
        nucleus = (
            rng.uniform(-0.15, 0.15) * b,
            rng.uniform(-0.15, 0.15) * a,
            scale * min(a, b) * rng.uniform(0.9, 1.1) * (1.2 if neuron and not dead else 1.0),
            scale * min(a, b) * rng.uniform(0.9, 1.1),
            (0.75 if dead else 0.8) * height,
        )
        neurites = []
        if neuron and not dead:
            angle = rng.uniform(0, np.pi)
            neurites = [
                (angle + k * np.pi + rng.uniform(-0.3, 0.3), rng.uniform(8.0, 18.0))
                for k in range(int(rng.integers(1, 3)))
            ]
        cells.append(
            Cell(y, x, rng.uniform(0, np.pi), a, b, height, nucleus, neuron, dead, neurites)
        )
    return cells


def _ellipsoid(yy, xx, cy, cx, angle, a, b, height) -> np.ndarray:
    """Thickness (um) of a half-ellipsoid cap with semi-axes a, b (in plane) and ``height``."""
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / a
    v = (-(xx - cx) * s + (yy - cy) * c) / b
    return height * np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, None))


def _neurite(yy, xx, cy, cx, angle, length, width=0.8, height=0.8) -> np.ndarray:
    """Thickness of a thin tube from the soma centre outwards (tapering)."""
    dx, dy = np.cos(angle), np.sin(angle)
    along = (xx - cx) * dx + (yy - cy) * dy
    across = np.abs(-(xx - cx) * dy + (yy - cy) * dx)
    taper = np.clip(1.0 - along / length, 0.0, 1.0) * (along > 0)
    return height * taper * np.clip(1.0 - (across / width) ** 2, 0.0, None)


def _render_geometry(cells: list[Cell], size: int) -> dict[str, np.ndarray]:
    """Per-pixel thickness maps (um) of each compartment, by cell class."""
    coords = (np.arange(size) + 0.5) * PIXEL_UM
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    maps = {
        k: np.zeros((size, size))
        for k in ("cell", "membrane", "nucleus", "dna", "dead_dna", "neuron")
    }
    for cell in cells:
        body = _ellipsoid(yy, xx, cell.y, cell.x, cell.angle, cell.a, cell.b, cell.height)
        inner = _ellipsoid(
            yy, xx, cell.y, cell.x, cell.angle, cell.a - 0.5, cell.b - 0.5, cell.height - 0.3
        )
        neurites = sum(
            (_neurite(yy, xx, cell.y, cell.x, ang, ln) for ang, ln in cell.neurites),
            np.zeros_like(body),
        )
        dy, dx, na, nb, nh = cell.nucleus
        nucleus = _ellipsoid(yy, xx, cell.y + dy, cell.x + dx, cell.angle, na, nb, nh)
        volume = (2.0 / 3.0) * np.pi * na * nb * nh  # same DNA, smaller volume -> denser
        maps["cell"] += body + neurites
        maps["membrane"] += np.clip(body - inner, 0.0, None)
        maps["nucleus"] += nucleus
        maps["dna"] += nucleus * (60.0 / volume)
        if cell.dead:
            maps["dead_dna"] += nucleus * (60.0 / volume)
        if cell.neuron and not cell.dead:
            maps["neuron"] += body + neurites
    return maps


def _gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Periodic Gaussian blur in the Fourier domain (wells are mirrored, see ``_mirror``)."""
    if sigma_px <= 0:
        return image
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma_px) ** 2 * (fx * fx + fy * fy))
    return np.fft.irfft2(np.fft.rfft2(image) * kernel, s=image.shape)


def _laplacian(image: np.ndarray) -> np.ndarray:
    """Five-point Laplacian per um^2 (edges replicated)."""
    p = np.pad(image, 1, mode="edge")
    return (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * image) / PIXEL_UM**2


def _mirror(image: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(image, pad, mode="reflect")


def render_well(cond: Condition, seed: int) -> dict[str, np.ndarray]:
    """``{"z0".."z{n-1}", label...}`` float images in [0, 1] for one well."""
    rng = np.random.default_rng(seed)
    cells = _sample_cells(rng, cond)
    pad = 16
    maps = {k: _mirror(v, pad) for k, v in _render_geometry(cells, cond.size).items()}
    crop = lambda im: im[pad:-pad, pad:-pad]

    # Phase: cytoplasm 0.015, membrane rim +0.03, nucleus +0.02 (condensed nuclei: denser DNA).
    k = 2.0 * np.pi / cond.wavelength_um
    opd = (
        0.015 * maps["cell"]
        + 0.03 * maps["membrane"]
        + 0.02 * maps["nucleus"]
        + 0.0015 * maps["dna"]
    )
    phi = k * opd
    lap = _laplacian(phi)
    yy, xx = np.meshgrid(
        np.linspace(-1, 1, cond.size + 2 * pad),
        np.linspace(-1, 1, cond.size + 2 * pad),
        indexing="ij",
    )
    center = rng.uniform(-0.3, 0.3, size=2)
    illumination = 1.0 - cond.illumination * ((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / 2
    sigma0 = 0.21 * cond.wavelength_um / cond.na
    out: dict[str, np.ndarray] = {}
    zs = (np.arange(cond.z_planes) - (cond.z_planes - 1) / 2) * cond.z_step_um
    for i, z in enumerate(zs):
        intensity = illumination * (1.0 - z / k * lap)
        sigma = np.hypot(sigma0, z * cond.na / 2.0) / PIXEL_UM
        intensity = crop(_gaussian_blur(intensity, sigma))
        photons = rng.poisson(np.clip(intensity, 0.0, None) * cond.photons)
        out[f"z{i}"] = np.clip(0.5 * photons / cond.photons, 0.0, 1.0)

    section = 1.5  # confocal optical section (um): max projection sees at most this thickness
    psf = 0.25 * cond.wavelength_um / cond.na / PIXEL_UM
    stains = {
        "DAPI_CONFOCAL": np.minimum(maps["dna"], 6.0 * section) / (6.0 * section),
        "CELLMASK_CONFOCAL": np.minimum(maps["cell"], section) / section,
        "DEAD_CONFOCAL": np.minimum(maps["dead_dna"], 6.0 * section) / (6.0 * section),
        "MAP2_CONFOCAL": np.minimum(maps["neuron"], section) / section,
    }
    for label in cond.labels:
        signal = 0.03 + 0.8 * crop(_gaussian_blur(stains[label], psf))
        noisy = (
            signal
            + rng.normal(0.0, 0.01, signal.shape)
            + 0.02 * np.sqrt(np.clip(signal, 0, None)) * rng.normal(size=signal.shape)
        )
        out[label] = np.clip(noisy, 0.0, 1.0)
    return out


def _well_name(index: int) -> str:
    return f"{'ABCDEFGH'[index // 12]}{index % 12 + 1}"


def write_condition(root: str | Path, condition: str, seed: int = 0) -> Path:
    """Write condition ``a`` or ``b`` under ``root/{train,test}/<lab>/<condition>/`` as 16-bit
    PNGs."""
    from PIL import Image

    cond = CONDITIONS[condition]
    root = Path(root)
    for split, first, count in (
        ("train", 0, cond.train_wells),
        ("test", cond.train_wells, cond.test_wells),
    ):
        folder = root / split / cond.lab / cond.name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(first, first + count):
            well = _well_name(index)
            seq = int.from_bytes(
                hashlib.sha256(f"{condition}/{seed}/{index}".encode()).digest()[:4], "little"
            )
            images = render_well(cond, seq)
            for key, image in images.items():
                z = int(key[1:]) if key.startswith("z") and key[1:].isdigit() else None
                channel = cond.modality if z is not None else key
                name = published_name(
                    lab=cond.lab, condition=cond.name, well=well, channel=channel, z=z
                )
                pixels = np.round(image * 65535.0).astype(np.uint16)
                Image.fromarray(pixels).save(folder / name)
    return root


def cached_condition(condition: str, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """The folder holding condition ``condition`` for ``seed``, written once and reused.

    Lives under ``$KERMANY_JAX_CACHE`` (default ``~/.cache/kermany-jax``) ``/isl_synthetic``,
    keyed by condition, seed and ``GENERATOR_VERSION``; written to a temporary folder and
    renamed, so an interrupted write is never read.
    """
    if condition not in CONDITIONS:
        raise ValueError(
            f"unknown synthetic ISL condition {condition!r}; expected one of {sorted(CONDITIONS)}"
        )
    base = Path(
        cache_dir or os.environ.get("KERMANY_JAX_CACHE") or Path.home() / ".cache" / "kermany-jax"
    )
    target = base / "isl_synthetic" / f"{condition}-seed{seed}-v{GENERATOR_VERSION}"
    if (target / "condition.json").is_file():
        return target
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    write_condition(staging, condition, seed)
    (staging / "condition.json").write_text(
        json.dumps(
            dataclasses.asdict(CONDITIONS[condition]) | {"seed": seed, "version": GENERATOR_VERSION}
        )
    )
    try:
        staging.rename(target)
    except OSError:  # another process finished first: theirs is identical
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return target
