"""Per-example ops alone: every pixel format, reduced-size decoding, crop geometry, augmentation."""

from __future__ import annotations

import io
import types

import numpy as np
import pytest
from PIL import Image

from data_pipelines.preprocess import PreprocessConfig, decode, load_image


def _encoded(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("L", "JPEG"),
        ("RGB", "JPEG"),
        ("CMYK", "JPEG"),
        ("L", "PNG"),
        ("RGB", "PNG"),
        ("RGBA", "PNG"),
        ("P", "PNG"),
        ("I;16", "PNG"),
        ("LA", "PNG"),
    ],
)
def test_every_pixel_format_gives_grey_or_rgb_uint8(mode, fmt):
    rgb = Image.new("RGB", (120, 80), (200, 120, 40))
    img = {
        "I;16": lambda: Image.fromarray(np.full((80, 120), 140 * 257, np.uint16)),
        "P": lambda: rgb.convert("P", palette=Image.Palette.ADAPTIVE),
    }.get(mode, lambda: rgb.convert(mode))()
    data = _encoded(img, fmt)
    grey_value = {"I;16": 140}.get(mode, np.asarray(rgb.convert("L"))[0, 0])
    for channels in (1, 3):
        out = load_image(data, PreprocessConfig(input_size=32, channels=channels))
        assert out.shape == (32, 32, channels) and out.dtype == np.uint8
        if channels == 1:
            assert abs(float(out.mean()) - float(grey_value)) < 6, (mode, fmt)
        elif mode in ("RGB", "RGBA", "CMYK", "P"):
            np.testing.assert_allclose(out.reshape(-1, 3).mean(0), (200, 120, 40), atol=8)


def test_real_rgb_chest_film_and_bgr_order(shared_data):
    film = shared_data / "chest_xray/test/PNEUMONIA/person1186_virus_2021.jpeg"
    assert Image.open(film).mode == "RGB"
    rgb = load_image(film, PreprocessConfig(input_size=64))
    bgr = load_image(film, PreprocessConfig(input_size=64, channel_order="BGR"))
    np.testing.assert_array_equal(rgb[..., ::-1], bgr)


def test_draft_decodes_big_films_small_and_agrees_with_full_decoding(shared_data):
    film = max(
        (shared_data / "chest_xray/train/NORMAL").glob("*.jpeg"), key=lambda p: p.stat().st_size
    )
    full = decode(film)
    reduced = decode(film, min_short_side=342, grey=True)
    assert min(reduced.size) >= 342 and reduced.size[0] <= full.size[0] // 2
    cfg = PreprocessConfig(input_size=299)
    fast = load_image(film, cfg).astype(float)
    slow = load_image(film, cfg.replace(draft=False)).astype(float)
    assert np.abs(fast - slow).mean() < 3.0


def test_centre_crop_geometry():
    # A wide image: left half black, right half white; the crop is centred, so half and half.
    array = np.zeros((100, 300), np.uint8)
    array[:, 150:] = 255
    out = load_image(array, PreprocessConfig(input_size=50, crop_fraction=0.5, channels=1))[..., 0]
    # Shorter side -> 100, crop 50 around the middle: columns 0..24 black, 25..49 white.
    assert out[:, :24].max() < 10 and out[:, 26:].min() > 245


def test_from_metadata_is_duck_typed():
    meta = types.SimpleNamespace(
        input_size=299,
        crop_fraction=0.875,
        interpolation="bicubic",
        in_channels=3,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        channel_order="RGB",
    )
    cfg = PreprocessConfig.from_metadata(meta, channels=1)
    assert (cfg.input_size, cfg.channels, cfg.interpolation, cfg.resize_size) == (
        299,
        1,
        "bicubic",
        342,
    )
    assert cfg.mean == (0.5, 0.5, 0.5) and not cfg.augment


def test_augmentation_off_unless_asked_and_seeded_when_on():
    array = np.random.default_rng(0).integers(0, 256, (90, 120), dtype=np.uint8)
    plain = PreprocessConfig(input_size=48, channels=1)
    base = load_image(array, plain)
    np.testing.assert_array_equal(base, load_image(array, plain, np.random.default_rng(9)))
    aug = plain.replace(augment=True)
    first = load_image(array, aug, np.random.default_rng(1))
    assert first.shape == base.shape
    np.testing.assert_array_equal(first, load_image(array, aug, np.random.default_rng(1)))
    assert not np.array_equal(first, load_image(array, aug, np.random.default_rng(2)))
    assert not np.array_equal(first, base)
    with pytest.raises(ValueError, match="rng"):
        load_image(array, aug)


def test_identity_augmentation_reproduces_the_centre_crop(shared_data):
    scan = next((shared_data / "oct/test/CNV").glob("*.jpeg"))
    plain = PreprocessConfig(input_size=64, channels=1)
    identity = plain.replace(
        augment=True,
        hflip=False,
        scale_range=(1.0, 1.0),
        max_rotate_degrees=0.0,
        max_translate_fraction=0.0,
        brightness=0.0,
        contrast=0.0,
    )
    got = load_image(scan, identity, np.random.default_rng(0)).astype(float)
    want = load_image(scan, plain).astype(float)
    assert np.abs(got - want).mean() < 2.5
