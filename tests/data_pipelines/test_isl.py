"""In Silico Labeling data: the published file-name scheme, the layout reader, crops, tiles and
the synthetic generator."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_pipelines.isl import (
    carve_val,
    make_crop_iterator,
    open_isl,
    plane_indices,
    random_crop,
    scan_wells,
    stitch_tiles,
    tile_well,
)
from data_pipelines.isl_naming import IslNameError, parse_image_name, published_name
from data_pipelines.isl_synthetic import CONDITIONS, render_well, write_condition
from data_pipelines.layout import DatasetLayoutError

# Verbatim from google/in-silico-labeling data.md (paper_data) and isl/testdata (data provider).
PAPER_PLANE = (
    "lab-Finkbeiner,condition-kevan_0_8,acquisition_date,year-2015,month-9,day-28,well-A4,"
    "z_depth-10,channel,value-PHASE_CONTRAST,is_mask-false,kind,value-ORIGINAL.png"
)
PAPER_TARGET = (
    "lab-Finkbeiner,condition-kevan_0_8,acquisition_date,year-2015,month-9,day-28,well-A4,"
    "depth_computation,value-MAXPROJECT,channel,value-DAPI_CONFOCAL,is_mask-false,kind,value-ORIGINAL.png"
)
PAPER_PREDICTED = (
    "lab-Finkbeiner,condition-kevan_0_8,acquisition_date,year-2015,month-9,day-28,well-A4,"
    "depth_computation,value-MAXPROJECT,channel,value-DAPI_CONFOCAL,statistic,value-MEDIAN,kind,"
    "value-PREDICTED.png"
)
REPO_PLANE = (
    "lab-FINKBEINER,condition-KEVAN_0_8,acquisition_date,year-2015,month-10,day-5,minute-0,well-A4,"
    "tile_computation-STITCHED,z_depth-3,channel-PHASE_CONTRAST,is_mask-false.png"
)


def test_both_published_spellings_parse():
    plane = parse_image_name(PAPER_PLANE)
    assert (plane.z, plane.channel, plane.is_mask, plane.kind) == (
        10,
        "PHASE_CONTRAST",
        False,
        "ORIGINAL",
    )
    assert plane.well_id == "kevan_0_8/A4" and plane.get("lab") == "Finkbeiner"
    target = parse_image_name(PAPER_TARGET)
    assert (target.z, target.channel) == ("MAXPROJECT", "DAPI_CONFOCAL")
    assert target.image_set == plane.image_set  # same well, same acquisition
    assert parse_image_name(PAPER_PREDICTED).kind == "PREDICTED"
    repo = parse_image_name(REPO_PLANE)
    assert (repo.z, repo.channel, repo.well_id) == (3, "PHASE_CONTRAST", "KEVAN_0_8/A4")


def test_written_names_follow_the_paper_data_spelling():
    name = published_name(
        lab="Finkbeiner", condition="kevan_0_8", well="A4", channel="PHASE_CONTRAST", z=10
    )
    assert name == PAPER_PLANE
    name = published_name(
        lab="Finkbeiner", condition="kevan_0_8", well="A4", channel="DAPI_CONFOCAL", z=None
    )
    assert name == PAPER_TARGET


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("lab-x,well-A1,z_depth-1,is_mask-false.png", "no channel"),
        ("lab-x,well-A1,channel-DIC,is_mask-false.png", "neither z_depth"),
        ("lab-x,well-A1,z_depth-one,channel-DIC.png", "not an integer"),
        ("lab-x,z_depth-1,channel-DIC.png", "no well"),
    ],
)
def test_bad_names_are_refused_naming_the_file(name, problem):
    with pytest.raises(IslNameError, match=problem) as caught:
        parse_image_name(name)
    assert name in str(caught.value)


def _write(folder, name, pixels):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / name)


def _paper_well(
    folder, well, *, planes=5, channels=("DAPI_CONFOCAL",), size=32, seed=0, mask_for=()
):
    """One well in the paper_data spelling: 16-bit planes and targets, optional is_mask files."""
    rng = np.random.default_rng(seed)
    common = "lab-Finkbeiner,condition-kevan_0_8,acquisition_date,year-2015,month-9,day-28"
    for z in range(planes):
        pixels = np.full((size, size), 1000 * (z + 1), np.uint16)  # plane z has value (z+1)/65.535
        _write(
            folder,
            f"{common},well-{well},z_depth-{z},channel,value-PHASE_CONTRAST,is_mask-false,"
            "kind,value-ORIGINAL.png",
            pixels,
        )
    for channel in channels:
        pixels = rng.integers(0, 65536, (size, size)).astype(np.uint16)
        _write(
            folder,
            f"{common},well-{well},depth_computation,value-MAXPROJECT,channel,value-{channel},"
            "is_mask-false,kind,value-ORIGINAL.png",
            pixels,
        )
        _write(
            folder,
            f"{common},well-{well},depth_computation,value-MAXPROJECT,channel,value-{channel},"
            "statistic,value-MEDIAN,kind,value-PREDICTED.png",
            np.zeros((size, size), np.uint16),
        )
        if channel in mask_for:
            mask = np.zeros((size, size), np.uint8)
            mask[:, : size // 2] = 255
            _write(
                folder,
                f"{common},well-{well},depth_computation,value-MAXPROJECT,channel,value-{channel},"
                "is_mask-true,kind,value-ORIGINAL.png",
                mask,
            )


def test_reader_groups_wells_picks_planes_and_masks_labels(tmp_path):
    train = tmp_path / "train" / "Finkbeiner" / "kevan_0_8"
    _paper_well(
        train,
        "A1",
        planes=13,
        channels=("DAPI_CONFOCAL", "MAP2_CONFOCAL"),
        mask_for=("MAP2_CONFOCAL",),
    )
    _paper_well(train, "A2", planes=13, channels=("DAPI_CONFOCAL",))
    _paper_well(tmp_path / "test" / "Finkbeiner" / "kevan_0_8", "B1", planes=13)
    wells = scan_wells(tmp_path / "train")
    assert [w.well_id for w in wells] == ["kevan_0_8/A1", "kevan_0_8/A2"]
    assert all(len(w.planes) == 13 and w.modality == "PHASE_CONTRAST" for w in wells)
    assert "PREDICTED" not in " ".join(p for w in wells for p in w.targets.values())

    source = open_isl("isl", tmp_path, split="train", labels=None, z_planes=7)
    assert source.labels == ("DAPI_CONFOCAL", "MAP2_CONFOCAL") and len(source) == 2
    a1 = source[0]
    assert a1["image"].shape == (32, 32, 7) and a1["target"].shape == (32, 32, 2)
    chosen = [round(float(a1["image"][0, 0, k]) * 65535 / 1000) - 1 for k in range(7)]
    assert chosen == plane_indices(13, 7) == [0, 2, 4, 6, 8, 10, 12]  # upstream's fractions
    assert (
        a1["target_mask"][:, :16, 1].all() and not a1["target_mask"][:, 16:, 1].any()
    )  # is_mask file
    a2 = source[1]
    assert (
        a2["target_mask"][..., 0].all() and not a2["target_mask"][..., 1].any()
    )  # not stained: masked
    assert np.all(a2["target"][..., 1] == 0)
    test = open_isl("isl", tmp_path, split="test", labels=source.labels, z_planes=7)
    assert test.well_ids() == ["kevan_0_8/B1"] and test.labels == source.labels


def test_val_is_carved_by_whole_wells_and_budgets_are_nested(tmp_path):
    folder = tmp_path / "train" / "Lab" / "c"
    for i in range(6):
        _paper_well(folder, f"A{i + 1}", planes=3, size=8, seed=i)
    kwargs = {"labels": None, "z_planes": 3, "val_fraction": 0.34, "seed": 3}
    train = open_isl("isl", tmp_path, split="train", **kwargs)
    val = open_isl("isl", tmp_path, split="val", **kwargs)
    assert len(val) == 2 and len(train) == 4 and not set(train.well_ids()) & set(val.well_ids())
    one, two = (open_isl("isl", tmp_path, split="train", max_wells=n, **kwargs) for n in (1, 2))
    assert set(one.well_ids()) <= set(two.well_ids()) <= set(train.well_ids())
    assert carve_val(list(range(5)), 0.0, 0) == (list(range(5)), [])


def test_layout_problems_are_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no train/ folder"):
        open_isl("isl", tmp_path, split="train", labels=None, z_planes=3)
    folder = tmp_path / "train" / "L" / "c"
    _paper_well(folder, "A1", planes=3, size=8)
    (next(folder.glob("*z_depth-1,*"))).unlink()
    with pytest.raises(IslNameError, match=r"z planes \[0, 2\]"):
        scan_wells(tmp_path / "train")


def _example(size=40, channels=3, labels=2, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.random((size, size, channels)).astype(np.float32)
    return {
        "image": image,
        "target": image[..., :labels].copy(),
        "target_mask": np.ones((size, size, labels), np.float32),
        "well": "c/A1",
    }


@pytest.mark.parametrize("augment", [False, True])
def test_targets_are_cropped_and_turned_exactly_like_the_input(augment):
    example = _example()
    for seed in range(8):
        crop = random_crop(example, 20, 8, np.random.default_rng(seed), augment)
        assert crop["image"].shape == (20, 20, 3) and crop["target"].shape == (8, 8, 2)
        # target == input channels at the same place: the centre of the input crop
        np.testing.assert_array_equal(crop["target"], crop["image"][6:14, 6:14, :2])


def test_tiles_stitch_back_to_the_whole_well():
    image = _example(size=37)["image"]
    tiles, tiling = tile_well(image, in_size=18, out_size=8)
    assert tiles.shape[1:] == (18, 18, 3) and len(tiling.origins) == 25
    centre = tiles[:, 5:13, 5:13]  # an identity "network": the centre of each input tile
    np.testing.assert_array_equal(stitch_tiles(centre, tiling), image)


def test_crop_iterator_is_deterministic_and_resumes(tmp_path):
    import jax

    from engine.mesh import make_mesh

    folder = tmp_path / "train" / "L" / "c"
    for i in range(2):
        _paper_well(folder, f"A{i + 1}", planes=3, size=24, seed=i)
    source = open_isl("isl", tmp_path, split="train", labels=None, z_planes=3)
    mesh = make_mesh(8)
    kwargs = {
        "in_size": 12,
        "out_size": 4,
        "global_batch_size": 8,
        "mesh": mesh,
        "seed": 1,
        "augment": True,
    }
    first = make_crop_iterator(source, **kwargs)
    next(first)
    state = first.get_state()
    expected = jax.device_get(next(first))
    second = make_crop_iterator(source, **kwargs)
    second.set_state(state)
    got = jax.device_get(next(second))
    assert got["image"].shape == (8, 12, 12, 3) and got["target"].shape == (8, 4, 4, 1)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_synthetic_wells_follow_the_optics_and_the_biology():
    a = render_well(CONDITIONS["a"], seed=5)
    assert a.keys() == {f"z{i}" for i in range(7)} | {
        "DAPI_CONFOCAL",
        "CELLMASK_CONFOCAL",
        "DEAD_CONFOCAL",
    }
    np.testing.assert_array_equal(a["z0"], render_well(CONDITIONS["a"], seed=5)["z0"])  # seeded
    contrast = [float(np.std(a[f"z{i}"])) for i in range(7)]
    assert np.argmin(contrast) == 3  # a phase object is (nearly) invisible in focus
    below, above = a["z1"] - a["z1"].mean(), a["z5"] - a["z5"].mean()
    assert np.corrcoef(below.ravel(), above.ravel())[0, 1] < -0.3  # contrast reverses through focus
    nuclei, dead = a["DAPI_CONFOCAL"] > 0.2, a["DEAD_CONFOCAL"] > 0.2
    assert dead.any() and (dead & nuclei).sum() >= 0.8 * dead.sum() and dead.sum() < nuclei.sum()
    b = render_well(CONDITIONS["b"], seed=5)
    assert "MAP2_CONFOCAL" in b and "DEAD_CONFOCAL" not in b and "MAP2_CONFOCAL" not in a


def test_synthetic_set_is_written_in_the_published_layout(tmp_path):
    write_condition(tmp_path, "b", seed=0)
    files = sorted((tmp_path / "train" / "Synthetic" / "synthetic_b").glob("*.png"))
    assert len(files) == CONDITIONS["b"].train_wells * (7 + 2)
    assert all(parse_image_name(f).kind == "ORIGINAL" for f in files)
    with Image.open(files[0]) as image:
        assert image.mode.startswith("I;16")  # 16-bit, as published
    source = open_isl("isl_synthetic_b", tmp_path, split="test", labels=None, z_planes=7)
    assert len(source) == CONDITIONS["b"].test_wells and source.labels == (
        "DAPI_CONFOCAL",
        "MAP2_CONFOCAL",
    )
