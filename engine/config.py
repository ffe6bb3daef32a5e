"""The typed run configuration: every knob of a training run, validated in one place.

``launch.train`` builds one of these from flags (and presets, ``engine.presets``); the
engine never reads flags itself. The resolved form (plus what the data and weights decided:
class names, channel count, preprocessing metadata) is written to ``<workdir>/config.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Transfer = Literal["linear_probe", "finetune", "scratch"]
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")
TRANSFERS = ("linear_probe", "finetune", "scratch")
DTYPES = ("float32", "bfloat16")
BN_MODES = ("train", "frozen")
CLASS_WEIGHTINGS = ("auto", "none", "balanced")
PROBE_SOLVERS = ("lbfgs", "steps")
PROBE_SELECTIONS = ("balanced_log_loss", "balanced_accuracy")
FINAL_SPLITS = ("train", "val", "test")
AUTO = "auto"
BEST_METRICS = {"accuracy": "max", "balanced_accuracy": "max", "loss": "min", "pearson": "max"}
TASKS = ("classification", "isl")
ISL_DATASET_PREFIX = "isl"  # isl, isl/<condition>, isl_synthetic_a, isl_synthetic_b


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are a small, safe fine-tune; presets set the paper's runs."""

    # What to train.
    model: str = "efficientnet_lite0"
    # A converted weight file, a registered tag, None (random), or "auto": the model's one
    # registered ImageNet tag (e.g. efficientnet_lite0.in1k) unless transfer is "scratch".
    pretrained: str | None = AUTO
    transfer: Transfer = "linear_probe"
    # linear_probe only. "lbfgs": full-batch L-BFGS to convergence with the L2 strength chosen
    # by patient-grouped cross-validation (engine.probe_fit); "steps": minibatch optimizer
    # steps on the cached features (the paper's recipe: Adam, batch 1,000, ~100 epochs).
    probe_solver: Literal["lbfgs", "steps"] = "lbfgs"
    cv_folds: int = 5  # patient-grouped folds of the training images (lbfgs probe)
    probe_l2: float | None = None  # None: chosen by cross-validation
    probe_select: Literal["balanced_log_loss", "balanced_accuracy"] = "balanced_log_loss"
    init_from: str | None = None  # a run dir whose best weights start this run (probe -> finetune)
    finetune_stages: int | None = None  # None: the whole backbone; N: only its last N stages
    bn_mode: Literal["train", "frozen"] = "train"  # BatchNorm statistics updated or frozen
    backbone_lr_scale: float = 0.1  # backbone lr = lr * this (finetune only)
    in_channels: int = 3  # 1 sums a pretrained first conv over RGB (same maths on grey inputs)
    input_size: int | None = None  # None: the weights' own input size
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    # Data.
    dataset: str = "oct"
    data_dir: str | None = None
    classes: tuple[str, ...] | None = None  # a subset of the data set's classes (binary tasks)
    val_fraction: float = 0.1  # patient-level validation split carved from train
    max_per_class: int | None = None  # the paper's "limited" runs: 1000
    drop_leaked: bool = False
    augment: bool = False  # the paper used none
    class_balanced_sampling: bool = False
    workers: int = 0
    on_bad_image: Literal["error", "skip"] = "error"

    # Optimisation.
    steps: int | None = None
    epochs: float | None = 10.0  # used when steps is None
    batch_size: int = 64  # global, over all devices and processes
    eval_batch_size: int | None = None  # None: batch_size
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    clip_norm: float | None = None
    label_smoothing: float = 0.0
    # "auto": balanced when the training classes differ in size (the norm in medical data).
    class_weighting: Literal["auto", "none", "balanced"] = AUTO
    dtype: Literal["float32", "bfloat16"] = "float32"
    seed: int = 0

    # The run.
    workdir: str = "runs/default"
    log_every: int = 10
    eval_every: int | None = None  # None: once per epoch
    checkpoint_every: int | None = None  # None: at each evaluation
    keep_checkpoints: int = 2
    best_metric: str = "balanced_accuracy"  # on the validation split
    final_split: str | None = (
        "test"  # launch.train runs launch.evaluate on it at the end; None: skip
    )
    progress: bool = True

    # Dense per-pixel task (In Silico Labeling; engine.dense_task). ``in_channels`` is then the
    # number of transmitted-light z planes fed to the model.
    # "auto": isl for the ISL data sets (names starting "isl"), classification otherwise.
    task: Literal["auto", "classification", "isl"] = AUTO
    # isl: the fluorescence channels to predict (None: all in the data); the output side of a
    # training crop (input = output + the model's margin); N training wells (nested, seeded).
    labels: tuple[str, ...] | None = None
    output_size: int = 24
    max_wells: int | None = None

    def __post_init__(self) -> None:
        if self.classes is not None:  # JSON gives lists back
            object.__setattr__(self, "classes", tuple(self.classes))
        if self.task == AUTO:
            task = "isl" if self.dataset.startswith(ISL_DATASET_PREFIX) else "classification"
            object.__setattr__(self, "task", task)
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
        checks = [
            (self.classes is None or len(self.classes) >= 2, "classes needs at least two names"),
            (self.transfer in TRANSFERS, f"transfer must be one of {TRANSFERS}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (self.dtype in DTYPES, f"dtype must be one of {DTYPES}"),
            (self.bn_mode in BN_MODES, f"bn_mode must be one of {BN_MODES}"),
            (
                self.class_weighting in CLASS_WEIGHTINGS,
                f"class_weighting must be one of {CLASS_WEIGHTINGS}",
            ),
            (self.probe_solver in PROBE_SOLVERS, f"probe_solver must be one of {PROBE_SOLVERS}"),
            (
                self.probe_select in PROBE_SELECTIONS,
                f"probe_select must be one of {PROBE_SELECTIONS}",
            ),
            (self.cv_folds >= 2, "cv_folds must be at least 2"),
            (self.probe_l2 is None or self.probe_l2 >= 0, "probe_l2 must be >= 0"),
            (
                self.final_split is None or self.final_split in FINAL_SPLITS,
                f"final_split must be one of {FINAL_SPLITS} or None (skip)",
            ),
            (self.best_metric in BEST_METRICS, f"best_metric must be one of {tuple(BEST_METRICS)}"),
            (self.batch_size > 0, "batch_size must be positive"),
            (self.lr > 0, "lr must be positive"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
            (0.0 <= self.label_smoothing < 1.0, "label_smoothing must be in [0, 1)"),
            (self.steps is None or self.steps > 0, "steps must be positive"),
            (self.epochs is None or self.epochs > 0, "epochs must be positive"),
            (
                self.finetune_stages is None or self.finetune_stages >= 0,
                "finetune_stages must be >= 0",
            ),
            (
                self.in_channels in (1, 3)
                or (self.task != "classification" and self.in_channels > 0),
                "in_channels must be 1 or 3 (any positive z-plane count for task=isl)",
            ),
            (self.task in TASKS, f"task must be one of {TASKS}"),
            (self.output_size > 0, "output_size must be positive"),
            (self.max_wells is None or self.max_wells > 0, "max_wells must be positive"),
            (
                self.best_metric != "pearson" or self.task == "isl",
                "best_metric=pearson is for task=isl",
            ),
            (
                self.task != "isl" or self.transfer != "linear_probe",
                "task=isl trains the whole network: pass --transfer=scratch (or finetune with --init_from)",
            ),
            (self.log_every > 0, "log_every must be positive"),
            (
                not (self.class_balanced_sampling and self.class_weighting == "balanced"),
                "choose class-balanced sampling or a class-weighted loss, not both",
            ),
            (
                self.transfer != "scratch" or self.pretrained in (None, AUTO),
                "transfer=scratch trains from random initialisation: drop --pretrained",
            ),
        ]
        problems = [msg for ok, msg in checks if not ok]
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def balanced_weighting(self, class_counts) -> bool:
        """Whether the loss weighs every class equally for training classes of these sizes."""
        if self.class_weighting == AUTO:
            return not self.class_balanced_sampling and len(set(class_counts)) > 1
        return self.class_weighting == "balanced"

    @property
    def best_mode(self) -> str:
        return BEST_METRICS[self.best_metric]

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}")
        return cls(**raw)


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


# Fields a resumed run may change (engine.resume.check_resumable): they decide what is logged,
# evaluated or kept, and where files are, never the parameters a step computes or the data
# order. Every other field must equal the checkpointed run's (a new field is exact until
# listed here). steps/epochs may grow to extend a run; a cosine schedule is then re-laid.
RESUME_FREE = frozenset(
    {
        "workdir",
        "data_dir",  # the data may move; class names and example counts are still compared
        "workers",  # the same batches with threads or worker processes
        "on_bad_image",  # only matters for a file that failed to decode (which stopped the run)
        "steps",
        "epochs",
        "eval_batch_size",
        "log_every",
        "eval_every",
        "checkpoint_every",
        "keep_checkpoints",
        "best_metric",
        "final_split",
        "progress",
    }
)
