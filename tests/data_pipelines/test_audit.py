"""The leakage audit finds planted shared patients and byte-identical files; --strict fails."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from data_pipelines.leakage import audit_splits
from data_pipelines.sources import open_splits
from launch import audit


def _leaky_tree(make_tree, sample_files):
    cnv, dme = sample_files["CNV"], sample_files["DME"]
    shared_patient = cnv[0].name.split("-")[1]
    files = {
        f"{s}/{c}/{files[i].name}": files[i]
        for c, files in sample_files.items()
        for s, i in (("train", 1), ("test", 2), ("val", 3))
    }
    files.update(
        {
            f"test/CNV/{cnv[0].name}": cnv[0],
            f"train/DME/DME-{shared_patient}-9.jpeg": dme[5],  # train x test: shared patient
            "train/CNV/CNV-424242-1.jpeg": cnv[0],  # train x test: identical bytes, other patient
            "val/NORMAL/NORMAL-434343-1.jpeg": dme[
                5
            ],  # train x val: identical bytes, DME vs NORMAL
        }
    )
    return make_tree(files), shared_patient


def test_audit_finds_planted_patients_and_copies(make_tree, sample_files):
    root, shared_patient = _leaky_tree(make_tree, sample_files)
    audits = {(a.first, a.second): a for a in audit_splits(open_splits("oct", data_dir=root))}
    assert set(audits) == {("train", "val"), ("train", "test"), ("val", "test")}
    train_test = audits[("train", "test")]
    assert train_test.shared_patients == (shared_patient,)
    assert train_test.patient_examples == {"train": {"DME": 1}, "test": {"CNV": 1}}
    assert len(train_test.duplicates) == 1
    assert train_test.duplicates[0][0].endswith("train/CNV/CNV-424242-1.jpeg")
    assert train_test.duplicate_examples == {"train": {"CNV": 1}, "test": {"CNV": 1}}
    train_val = audits[("train", "val")]
    assert not train_val.shared_patients
    assert train_val.duplicate_examples == {"train": {"DME": 1}, "val": {"NORMAL": 1}}
    assert not audits[("val", "test")].leaked


def test_audit_cli_strict_exit_codes(make_tree, sample_files, shared_data, capsys):
    root, _ = _leaky_tree(make_tree, sample_files)
    assert audit.main(["--dataset=oct", f"--data_dir={root}", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["leaked"] and report["splits"]["train"]["examples"] == 6
    assert audit.main(["--dataset=oct", f"--data_dir={root}", "--strict"]) == 1
    assert "LEAK" in capsys.readouterr().out
    # The shared sample is patient-disjoint with no copies: clean, also with a carved val split.
    assert (
        audit.main(
            ["--dataset=chest_xray", f"--data_dir={shared_data}", "--strict", "--val_fraction=0.2"]
        )
        == 0
    )


def test_audit_names_leaked_patients_and_files_and_writes_them_as_csv(
    make_tree, sample_files, tmp_path, capsys
):
    root, shared_patient = _leaky_tree(make_tree, sample_files)
    out = tmp_path / "leaks" / "leaks.csv"
    assert audit.main(["--dataset=oct", f"--data_dir={root}", f"--out={out}"]) == 0
    table = capsys.readouterr()
    assert f"patient {shared_patient}:" in table.out
    assert f"DME-{shared_patient}-9.jpeg" in table.out  # the patient's train file ...
    assert f"test/CNV/{sample_files['CNV'][0].name}" in table.out  # ... and test file, named
    rows = list(csv.DictReader(out.open()))
    assert f"{len(rows)} leaked files written to {out}" in table.err
    patient_rows = [r for r in rows if r["reason"] == "shared_patient"]
    assert sorted((r["split"], r["class"], Path(r["path"]).name) for r in patient_rows) == [
        ("test", "CNV", sample_files["CNV"][0].name),
        ("train", "DME", f"DME-{shared_patient}-9.jpeg"),
    ]
    assert {r["patient"] for r in patient_rows} == {shared_patient}
    copies = [r for r in rows if r["reason"] == "identical_file"]
    assert {r["pair"] for r in copies} == {"train x test", "train x val"}
    by_path = {Path(r["path"]).name: r for r in copies if r["pair"] == "train x test"}
    train_copy = by_path["CNV-424242-1.jpeg"]
    assert train_copy["split"] == "train" and train_copy["patient"] == "424242"
    assert train_copy["identical_to"].endswith(f"test/CNV/{sample_files['CNV'][0].name}")
    val_copy = next(r for r in copies if r["split"] == "val")
    assert val_copy["class"] == "NORMAL" and val_copy["path"].endswith("NORMAL-434343-1.jpeg")
    # Past --show, the rest are counted, not named (every row is still in the CSV).
    assert audit.main(["--dataset=oct", f"--data_dir={root}", "--show=0"]) == 0
    table = capsys.readouterr().out
    assert f"patient {shared_patient}:" not in table and "... 1 more patients" in table
    assert "CNV-424242-1.jpeg ==" not in table and "... 1 more pairs" in table
