"""Hostile and unusual images: a pixel limit against decompression bombs in every reader,
and one documented channel layout for 16-bit, palette, alpha and CMYK files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from data_pipelines.image_files import open_image_files
from data_pipelines.integrity import BadImageError, header_size, image_file_problem
from data_pipelines.pipeline import make_eval_iterator
from data_pipelines.preprocess import PreprocessConfig, decode, load_image
from data_pipelines.sources import open_dataset
from tests.sample_images import bomb_jpeg, bomb_png

CFG = PreprocessConfig(input_size=8, crop_fraction=1.0, interpolation="nearest", channels=3)
GREY = CFG.replace(channels=1)


@pytest.fixture(params=["png", "jpeg"])
def bomb(request, tmp_path):
    maker = bomb_png if request.param == "png" else bomb_jpeg
    return maker(tmp_path / f"bomb.{request.param}")


def test_header_size_reads_png_and_jpeg_without_decoding(bomb):
    assert header_size(bomb) == (30_000, 30_000)


def test_every_reader_refuses_a_bomb_naming_the_file(bomb):
    problem = image_file_problem(bomb)  # dataset open, audit, prepare
    assert problem and "30000 x 30000 = 900,000,000 pixels is over the limit" in problem
    for image in (bomb, bomb.read_bytes()):  # training, evaluation, predict, occlusion
        with pytest.raises(BadImageError, match="over the limit") as caught:
            load_image(image, CFG, name=str(bomb))
        assert str(bomb) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(BadImageError, match="over the limit"):
        decode(bomb, min_short_side=16)  # prepare (data_pipelines.tfds_build) decodes here


def test_pils_own_bomb_error_is_our_one_line_error(tmp_path, monkeypatch):
    """Past PIL's limit (2x its MAX_IMAGE_PIXELS) PIL raises inside open: same message."""
    monkeypatch.setenv("KERMANY_MAX_IMAGE_PIXELS", str(10**12))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(BadImageError, match="900,000,000 pixels is over the limit"):
        load_image(bomb_png(tmp_path / "b.png"), CFG)


def test_the_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.new("L", (40, 30), 9).save(path)
    assert load_image(path, GREY).shape == (8, 8, 1)
    monkeypatch.setenv("KERMANY_MAX_IMAGE_PIXELS", "1000")
    assert "40 x 30 = 1,200 pixels is over the limit of 1,000" in image_file_problem(path)
    with pytest.raises(BadImageError, match="over the limit of 1,000"):
        load_image(path, GREY)


def test_dataset_with_a_bomb_names_it_or_skips_it(tmp_path):
    for cls in ("CNV", "DME", "DRUSEN", "NORMAL"):
        for i in range(2):
            folder = tmp_path / "train" / cls
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("L", (20, 20), 50 * i).save(folder / f"{cls}-{i}-1.jpeg")
    bomb = bomb_jpeg(tmp_path / "train" / "CNV" / "CNV-9-1.jpeg")
    with pytest.raises(BadImageError, match="over the limit") as caught:
        open_dataset("oct", data_dir=tmp_path, split="train", val_fraction=0.0)
    assert str(bomb) in str(caught.value)
    kept = open_dataset(
        "oct", data_dir=tmp_path, split="train", val_fraction=0.0, on_bad_image="skip"
    )
    assert len(kept) == 8 and str(bomb) not in {r.path for r in kept.records}


def test_command_line_images_keep_the_good_ones_and_name_the_bomb(tmp_path, bomb, mesh8):
    good = tmp_path / "good.png"
    Image.new("RGB", (20, 20), (10, 20, 30)).save(good)
    files = open_image_files([good, bomb], ["a"])
    assert files.paths == [str(good)] and files.original_hw == [(20, 20)]
    assert len(files.errors) == 1 and files.errors[0].startswith(f"{bomb}: ")
    (batch,) = make_eval_iterator(files.source, CFG, global_batch_size=8, mesh=mesh8)
    mask = np.asarray(batch["mask"])
    assert mask.sum() == 1 and np.asarray(batch["image"])[mask].shape == (1, 8, 8, 3)


def _encoded(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _uniform(out: np.ndarray) -> tuple[int, ...]:
    """The one value every pixel has (the inputs are uniform)."""
    values = out.reshape(-1, out.shape[-1])
    assert (values == values[0]).all()
    return tuple(int(v) for v in values[0])


def test_sixteen_bit_grey_maps_the_full_range_onto_eight_bits():
    """value / 257 whatever the image's own range: a dark 16-bit scan stays dark."""
    for value, expected in ((140 * 257, 140), (65535, 255), (200, 1), (0, 0)):
        png = _encoded(Image.fromarray(np.full((12, 12), value, np.uint16)))
        assert Image.open(io.BytesIO(png)).mode.startswith("I")
        assert _uniform(load_image(png, GREY)) == (expected,)
        assert _uniform(load_image(png, CFG)) == (expected,) * 3


def test_palette_gives_its_colours_and_transparency_composites_onto_black():
    rgb = Image.new("RGB", (12, 12), (200, 100, 50))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert _uniform(load_image(_encoded(palette), CFG)) == (200, 100, 50)
    palette.info["transparency"] = 0  # the only colour, index 0, fully transparent
    assert _uniform(load_image(_encoded(palette, transparency=0), CFG)) == (0, 0, 0)


@pytest.mark.parametrize(
    ("img", "rgb"),
    [
        (Image.new("RGBA", (12, 12), (200, 100, 50, 128)), (100, 50, 25)),
        (Image.new("RGBA", (12, 12), (200, 100, 50, 0)), (0, 0, 0)),
        (Image.new("RGBA", (12, 12), (200, 100, 50, 255)), (200, 100, 50)),
        (Image.new("LA", (12, 12), (200, 128)), (100, 100, 100)),
    ],
)
def test_alpha_is_composited_onto_black(img, rgb):
    png = _encoded(img)
    assert _uniform(load_image(png, CFG)) == rgb
    grey = Image.new("RGB", (1, 1), rgb).convert("L").getpixel((0, 0))  # ITU-R 601 luma
    assert _uniform(load_image(png, GREY)) == (grey,)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red ink on white paper
    jpeg = _encoded(cmyk, "JPEG", quality=100)
    assert Image.open(io.BytesIO(jpeg)).mode == "CMYK"
    r, g, b = _uniform(load_image(jpeg, CFG))
    assert r > 240 and g < 15 and b < 15
    assert load_image(jpeg, GREY).shape == (8, 8, 1)
