"""Patient and pathogen rules of the file names, on every shared real image and on edge cases."""

from __future__ import annotations

import csv

import pytest

from data_pipelines import naming


def test_patient_ids_match_the_manifest_for_every_shared_image(shared_data):
    with open(shared_data / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 822
    for row in rows:
        rule = naming.oct_patient if row["dataset"] == "oct" else naming.chest_patient
        assert rule(row["path"]) == row["patient_id"], row["path"]
        assert naming.patient_of(row["path"]) == row["patient_id"]


def test_pathogen_of_every_shared_pneumonia_file(shared_data):
    files = sorted((shared_data / "chest_xray").glob("*/PNEUMONIA/*.jpeg"))
    assert len(files) == 200
    for path in files:
        want = "bacteria" if "_bacteria_" in path.name else "virus"
        assert naming.pathogen(path) == want
    assert all(naming.pathogen(p) is None for p in (shared_data / "chest_xray").glob("*/NORMAL/*"))


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("CNV-1016042-1.jpeg", "1016042"),
        ("DRUSEN-224974-11.jpeg", "224974"),
        ("NORMAL-5193994-1.png", "5193994"),
    ],
)
def test_oct_middle_number(name, patient):
    assert naming.oct_patient(name) == patient
    assert naming.chest_patient(name) is None


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person1026_bacteria_2957.jpeg", "person1026"),
        ("person1_virus_6.jpeg", "person1"),
        ("IM-0041-0001.jpeg", "IM-0041"),
        ("IM-0041-0001-0002.jpeg", "IM-0041"),
        ("NORMAL2-IM-0041-0001.jpeg", "IM-0041"),  # same patient as IM-0041-0001 (conservative)
    ],
)
def test_chest_patients(name, patient):
    assert naming.chest_patient(name) == patient


def test_unknown_names_fall_back_to_the_stem():
    assert naming.oct_patient("scan_17.jpeg") is None
    assert naming.chest_patient("film.png") is None
    assert naming.patient_of("dir/scan_17.jpeg") == "scan_17"
    assert naming.pathogen("person3_fungus_1.jpeg") is None
