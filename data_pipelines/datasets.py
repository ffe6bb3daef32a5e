"""The data-set table: each named data set's folder layout, labels, patients and questions.

A data set is a folder layout plus two rules from the data README (which class a file belongs
to, which patient it comes from) and the yes/no questions its classes answer (the paper's
urgent referral, pneumonia vs normal, ...), declared here so that evaluation never infers them
from class names. ``sources`` reads folders and ``prepared`` reads TFDS builds by this table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from data_pipelines import naming
from data_pipelines.integrity import BadImageError

BUNDLED_OCT_SAMPLE = Path(__file__).resolve().parent / "bundled" / "oct_sample"


@dataclasses.dataclass(frozen=True)
class DeclaredTask:
    """A yes/no question a data set's classes answer, e.g. urgent referral or pneumonia.

    It applies to a model whose classes include every class named here (images of other
    classes are left out of it); with ``alone``, only to a model of exactly these classes
    (the paper's two-class models trained on a subset, e.g. CNV vs normal).
    """

    name: str
    positive: tuple[str, ...]  # classes whose probabilities make the score
    negative: tuple[str, ...]
    positive_label: str
    negative_label: str
    alone: bool = False


@dataclasses.dataclass(frozen=True)
class FolderLayout:
    """A class-per-folder data set: where its splits are and how files map to labels."""

    name: str
    folders: tuple[str, ...] | None  # allowed class folders; None: any (the generic tree)
    class_names: tuple[str, ...] | None  # label order; None: the train split's folders
    expected: str  # layout shown in error messages
    root_candidates: tuple[str, ...] = ()
    # (file, class folder) -> class name, None to leave the file out of this task; raises
    # BadImageError when the name does not say (e.g. a pneumonia file without a pathogen).
    class_of: Callable[[Path, str], str | None] = lambda path, folder: folder
    patient_of: Callable[[Path], str | None] = naming.patient_of
    tasks: tuple[DeclaredTask, ...] = ()  # the questions evaluation reports; none: no guess


def _pathogen_class(path: Path, folder: str, *, keep_normal: bool) -> str | None:
    if folder == "NORMAL":
        return "NORMAL" if keep_normal else None
    kind = naming.pathogen(path)
    if kind is None:
        raise BadImageError(path, "pneumonia file name says neither _bacteria_ nor _virus_")
    return "BACTERIAL" if kind == "bacteria" else "VIRAL"


def _versus_normal(name: str, classes: tuple[str, ...]) -> DeclaredTask:
    """``<name>_vs_normal``: a model of exactly these classes and NORMAL (the paper's binaries)."""
    return DeclaredTask(f"{name}_vs_normal", classes, ("NORMAL",), name, "normal", alone=True)


OCT_TASKS = (
    DeclaredTask("urgent_referral", ("CNV", "DME"), ("DRUSEN", "NORMAL"), "urgent", "not urgent"),
    _versus_normal("cnv", ("CNV",)),
    _versus_normal("dme", ("DME",)),
    _versus_normal("drusen", ("DRUSEN",)),
)
_BACTERIAL_VS_VIRAL = DeclaredTask(
    "bacterial_vs_viral", ("BACTERIAL",), ("VIRAL",), "bacterial", "viral"
)
CHEST_TASKS = (_versus_normal("pneumonia", ("PNEUMONIA",)),)
CHEST_PATHOGEN_TASKS = (
    DeclaredTask("pneumonia_vs_normal", ("BACTERIAL", "VIRAL"), ("NORMAL",), "pneumonia", "normal"),
    _BACTERIAL_VS_VIRAL,
    _versus_normal("bacterial", ("BACTERIAL",)),
    _versus_normal("viral", ("VIRAL",)),
)

# The OCT2017 class folders, in the paper's label order.
OCT_CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
_OCT_LAYOUT = "DIR/{train,test[,val]}/{CNV,DME,DRUSEN,NORMAL}/CLASS-<patient>-<n>.jpeg"
_CHEST_LAYOUT = "DIR/{train,test[,val]}/{NORMAL,PNEUMONIA}/*.jpeg"
_OCT_ROOTS = ("oct", "OCT2017", "CellData/OCT", "ZhangLabData/CellData/OCT")
_CHEST_ROOTS = (
    "chest_xray",
    "chest_xray/chest_xray",
    "CellData/chest_xray",
    "ZhangLabData/CellData/chest_xray",
)

LAYOUTS: dict[str, FolderLayout] = {
    "oct": FolderLayout(
        "oct",
        OCT_CLASSES,
        OCT_CLASSES,
        _OCT_LAYOUT,
        _OCT_ROOTS,
        patient_of=lambda p: naming.oct_patient(p),
        tasks=OCT_TASKS,
    ),
    "oct_sample": FolderLayout(
        "oct_sample",
        OCT_CLASSES,
        OCT_CLASSES,
        _OCT_LAYOUT,
        patient_of=lambda p: naming.oct_patient(p),
        tasks=OCT_TASKS,
    ),
    "chest_xray": FolderLayout(
        "chest_xray",
        ("NORMAL", "PNEUMONIA"),
        ("NORMAL", "PNEUMONIA"),
        _CHEST_LAYOUT,
        _CHEST_ROOTS,
        patient_of=naming.chest_patient,
        tasks=CHEST_TASKS,
    ),
    "chest_xray_pathogen": FolderLayout(
        "chest_xray_pathogen",
        ("NORMAL", "PNEUMONIA"),
        ("BACTERIAL", "VIRAL"),
        _CHEST_LAYOUT,
        _CHEST_ROOTS,
        class_of=lambda p, f: _pathogen_class(p, f, keep_normal=False),
        patient_of=naming.chest_patient,
        tasks=(_BACTERIAL_VS_VIRAL,),
    ),
    "chest_xray_3class": FolderLayout(
        "chest_xray_3class",
        ("NORMAL", "PNEUMONIA"),
        ("NORMAL", "BACTERIAL", "VIRAL"),
        _CHEST_LAYOUT,
        _CHEST_ROOTS,
        class_of=lambda p, f: _pathogen_class(p, f, keep_normal=True),
        patient_of=naming.chest_patient,
        tasks=CHEST_PATHOGEN_TASKS,
    ),
    "folder": FolderLayout("folder", None, None, "DIR/{train,test[,val]}/<class>/<image files>"),
}
DATASETS = (*LAYOUTS, "synthetic")
# "synthetic" is read with the folder layout but plants lesions of the OCT classes.
_TASKS = {name: layout.tasks for name, layout in LAYOUTS.items()} | {"synthetic": OCT_TASKS}


def declared_tasks(dataset: str) -> tuple[DeclaredTask, ...]:
    """The yes/no questions data set ``dataset`` declares (none for an unknown or plain folder)."""
    return _TASKS.get(dataset, ())


_ARCHIVE = """\
Get "Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for Classification"
(Kermany, Zhang, Goldbaum 2018), Mendeley Data v2, doi:10.17632/rscbjbr9sj.2
(https://data.mendeley.com/datasets/rscbjbr9sj/2, licence CC BY 4.0), or its Kaggle copy
"kermany2018" (https://www.kaggle.com/datasets/paultimothymooney/kermany2018). Unpack it and pass
the folder that holds the splits (or one above it: {roots})."""


def missing_data_message(dataset: str) -> str:
    """Why ``dataset`` cannot open without a data_dir, where to get it and the layout expected.

    One text for every entry point (train, evaluate, audit): nothing is downloaded at run time.
    """
    layout = LAYOUTS.get(dataset, LAYOUTS["folder"])
    lines = [
        (
            f"--dataset={dataset} needs --data_dir: the full images are not bundled and nothing "
            "is downloaded at run time (an 80-image OCT sample is: --dataset=oct_sample)."
        ),
        f"Expected layout: --data_dir={layout.expected}",
    ]
    if layout.root_candidates:
        lines.append(_ARCHIVE.format(roots=", ".join(f"DIR/{r}" for r in layout.root_candidates)))
    return "\n".join(lines)
