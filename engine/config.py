"""The typed run configuration: every knob of a training run, validated in one place.

``launch.train`` builds one of these from flags (and presets, ``configs/``); the
engine never reads flags itself. The resolved form (plus what the data and weights decided:
class names, channel count, preprocessing metadata) is written to ``<workdir>/config.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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
NONE_WORDS = ("none", "")  # what a flag or a hand-written value says for None


def setting(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    resume_free: bool = False,
) -> Any:
    """A :class:`TrainConfig` field with its one description.

    ``doc`` is the field's help, the only copy: ``launch.config_flags`` shows it under
    ``--help`` (with the default) for every entry point that takes the field as a flag.
    ``resume_free``: a resumed run may change the field (see :data:`RESUME_FREE`).
    """
    metadata = {"help": doc, "resume_free": resume_free}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are a small, safe linear probe; presets set the paper's runs."""

    # What to train.
    model: str = setting(
        "efficientnet_lite0",
        "architecture (models.list_models(): small_cnn, resnet18..152, inception_v3, "
        "efficientnet_lite0, isl)",
    )
    pretrained: str | None = setting(
        AUTO,
        "converted weight file (launch.convert), registered tag (efficientnet_lite0.in1k), 'auto' "
        "(the model's one registered ImageNet tag, unless --transfer=scratch) or None "
        "(random initialisation)",
    )
    transfer: Transfer = setting(
        "linear_probe",
        "linear_probe (the paper: frozen backbone, cached features), finetune, or scratch",
    )
    probe_solver: Literal["lbfgs", "steps"] = setting(
        "lbfgs",
        "linear_probe solver: lbfgs (full batch to convergence, L2 chosen by patient-grouped "
        "cross-validation, engine.probe_fit) or steps (minibatch optimizer steps on the cached "
        "features: the paper's recipe, Adam, batch 1,000, ~100 epochs)",
    )
    cv_folds: int = setting(
        5, "patient-grouped cross-validation folds of the training images (lbfgs probe)"
    )
    probe_l2: float | None = setting(
        None, "L2 strength of the lbfgs probe (None: chosen by cross-validation)"
    )
    probe_select: Literal["balanced_log_loss", "balanced_accuracy"] = setting(
        "balanced_log_loss", "what picks the L2 strength: balanced_log_loss or balanced_accuracy"
    )
    init_from: str | None = setting(
        None,
        "a run directory whose best checkpoint initialises this run (e.g. finetune after "
        "linear_probe)",
    )
    finetune_stages: int | None = setting(
        None, "finetune only the last N backbone stages (+ classifier); None: all"
    )
    bn_mode: Literal["train", "frozen"] = setting(
        "train", "BatchNorm statistics in trained stages: train (updated) or frozen"
    )
    backbone_lr_scale: float = setting(0.1, "finetune: backbone learning rate = lr * this")
    in_channels: int = setting(
        3,
        "1: grey input (pretrained first conv summed over RGB: same maths, 3x less input work); "
        "task=isl: the number of transmitted-light z planes",
    )
    input_size: int | None = setting(None, "input resolution (None: the weights' own)")
    model_kwargs: dict[str, Any] = setting(
        doc="JSON dict of extra model options, e.g. '{\"drop_rate\": 0.3}'", factory=dict
    )

    # Data.
    dataset: str = setting(
        "oct",
        "oct, chest_xray, chest_xray_pathogen, chest_xray_3class, folder, oct_sample, synthetic; "
        "isl, isl/<condition>, isl_synthetic_a, isl_synthetic_b (task=isl)",
    )
    data_dir: str | None = setting(
        None,
        "the unpacked archive (e.g. DIR/OCT2017 with train/ and test/)",
        # the data may move; class names and example counts are still compared
        resume_free=True,
    )
    classes: tuple[str, ...] | None = setting(
        None,
        "comma-separated class subset, first = label 0 (e.g. NORMAL,CNV for a binary task)",
    )
    val_fraction: float = setting(0.1, "patient-level validation split carved from train")
    max_per_class: int | None = setting(
        None, "at most N training images per class (the paper's limited model: 1000)"
    )
    drop_leaked: bool = setting(
        False, "drop training images whose patient or file also appears in a later split"
    )
    augment: bool = setting(
        False,
        "training augmentation (flip, small affine, brightness/contrast; the paper used none)",
    )
    class_balanced_sampling: bool = setting(False, "oversample rare classes to balance every epoch")
    workers: int = setting(
        0,
        "input worker processes (0: threads in this process)",
        resume_free=True,  # the same batches with threads or worker processes
    )
    on_bad_image: Literal["error", "skip"] = setting(
        "error",
        "error (stop, naming the file) or skip (log and leave it out)",
        resume_free=True,  # only matters for a file that failed to decode (which stopped the run)
    )

    # Optimisation.
    steps: int | None = setting(None, "optimizer steps (overrides --epochs)", resume_free=True)
    epochs: float | None = setting(
        10.0, "epochs over the training split (used when --steps is None)", resume_free=True
    )
    batch_size: int = setting(64, "global batch size over all devices and processes")
    eval_batch_size: int | None = setting(
        None, "global batch size for evaluation (None: --batch_size)", resume_free=True
    )
    optimizer: Literal["adam", "adamw", "sgd"] = setting(
        "adam", "adam, adamw or sgd (momentum --momentum)"
    )
    lr: float = setting(1e-3, "peak learning rate (the classifier's when fine-tuning)")
    momentum: float = setting(0.9, "sgd momentum")
    weight_decay: float = setting(0.0, "on kernels only: decoupled for adamw, L2 for adam/sgd")
    schedule: Literal["cosine", "constant"] = setting(
        "cosine", "cosine (decay to 0) or constant, after --warmup_steps linear warm-up"
    )
    warmup_steps: int = setting(0, "linear warm-up steps")
    clip_norm: float | None = setting(
        None, "clip gradients to this global norm (None: no clipping)"
    )
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy")
    class_weighting: Literal["auto", "none", "balanced"] = setting(
        AUTO,
        "auto (balanced when the training classes differ in size, the norm in medical data), "
        "none or balanced (loss weight N / (K n_k) per class)",
    )
    dtype: Literal["float32", "bfloat16"] = setting(
        "float32", "compute dtype: float32 or bfloat16 (parameters stay float32)"
    )
    seed: int = setting(0, "seed of initialisation, data order, dropout and the validation split")

    # The run.
    workdir: str = setting(
        "runs/default",
        "run directory: config, checkpoints, metrics.jsonl, tb/ (resumes if it holds a checkpoint)",
        resume_free=True,
    )
    log_every: int = setting(
        10, "steps between metric fetches, log rows and progress updates", resume_free=True
    )
    eval_every: int | None = setting(
        None, "steps between validations (None: once per epoch)", resume_free=True
    )
    checkpoint_every: int | None = setting(
        None, "steps between checkpoints (None: at each validation)", resume_free=True
    )
    keep_checkpoints: int = setting(2, "latest checkpoints kept", resume_free=True)
    best_metric: str = setting(
        "balanced_accuracy",
        "validation metric that picks the best checkpoint: accuracy, balanced_accuracy, loss "
        "(pearson for task=isl)",
        resume_free=True,
    )
    final_split: str | None = setting(
        "test",
        "split evaluated with the best checkpoint at the end, full report via launch.evaluate "
        "(train, val, test; None to skip)",
        resume_free=True,
    )
    progress: bool = setting(True, "show the progress bar", resume_free=True)

    # Dense per-pixel task (In Silico Labeling; engine.dense_task).
    task: Literal["auto", "classification", "isl"] = setting(
        AUTO,
        "auto (isl for the isl* data sets, else classification), classification, or isl "
        "(In Silico Labeling: transmitted-light z-stack in, per-pixel fluorescence out)",
    )
    labels: tuple[str, ...] | None = setting(
        None,
        "isl: comma-separated fluorescence channels to predict (None: all in the data)",
    )
    output_size: int = setting(
        24, "isl: output side of a training crop; the input adds the model's margin"
    )
    max_wells: int | None = setting(
        None, "isl: train on N wells (a seeded nested order: the transfer budgets)"
    )

    def __post_init__(self) -> None:
        for name in ("pretrained", "final_split"):  # an explicit "None" means none
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() in NONE_WORDS:
                object.__setattr__(self, name, None)
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
                (
                    "task=isl trains the whole network: pass --transfer=scratch "
                    "(or finetune with --init_from)"
                ),
            ),
            (self.log_every > 0, "log_every must be positive"),
            (
                not (self.class_balanced_sampling and self.class_weighting == "balanced"),
                "choose class-balanced sampling or a class-weighted loss, not both",
            ),
            (
                self.transfer != "scratch" or self.pretrained in (None, AUTO),
                (
                    "transfer=scratch trains from random initialisation: drop --pretrained "
                    "(or pass --pretrained=None)"
                ),
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


# Fields a resumed run may change (engine.resume.check_resumable), marked ``resume_free`` on the
# field: they decide what is logged, evaluated or kept, and where files are, never the
# parameters a step computes or the data order. Every other field must equal the checkpointed
# run's (a new field is exact unless marked). steps/epochs may grow to extend a run; a cosine
# schedule is then re-laid.
RESUME_FREE = frozenset(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["resume_free"]
)
