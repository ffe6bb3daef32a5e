"""Which frozen features make the best linear probe on a data set? Measured, not guessed.

Each variant (input resolution x feature set x horizontal-flip averaging) is scored by the
nested, patient-grouped cross-validation the L-BFGS probe itself runs (engine.probe_fit), on
the run's training images only (its train and validation parts), so no choice is tuned on a
test split. Features are extracted once per resolution (the image and its mirror image), and
every variant is cut from them.

Feature sets: ``pre_logits`` (the pooled last layer, the paper's "bottleneck") and
``multi_stage`` (the last three stages, each global-average-pooled, plus ``pre_logits``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from data_pipelines.datasets import declared_tasks
from data_pipelines.pipeline import make_eval_iterator
from data_pipelines.splits import patient_folds
from engine.config import TrainConfig
from engine.evaluation import metrics
from engine.predictor import Predictor
from engine.probe_fit import cross_validate
from engine.run_data import open_run_data
from engine.state import build_model, resolve_pretrained

FEATURE_SETS = ("pre_logits", "multi_stage")
HEADLINE = ("balanced_accuracy", "accuracy", "weighted_error", "urgent_referral/auc")


@dataclasses.dataclass(frozen=True)
class Variant:
    input_size: int
    features: str
    flip: bool

    @property
    def name(self) -> str:
        return f"{self.input_size}px/{self.features}{'+flip' if self.flip else ''}"


def _feature_layout(model: nnx.Module, channels: int) -> tuple[tuple[str, ...], list[int]]:
    """The last three stages' ``extras`` names plus ``pre_logits``, and their widths."""
    _, extras = model(jnp.zeros((1, 64, 64, channels), jnp.float32))
    names = (*[k for k in extras if k.startswith("stage")][-3:], "pre_logits")
    return names, [int(extras[n].shape[-1]) for n in names]


def _extract(
    predictor: Predictor,
    names: tuple[str, ...],
    source: Any,
    cfg: Any,
    batch: int,
    flip: bool,
):
    def batches() -> Iterator[dict[str, Any]]:
        for b in make_eval_iterator(source, cfg, global_batch_size=batch, mesh=predictor.mesh):
            yield b | {"image": b["image"][:, :, ::-1]} if flip else b

    out, index = predictor.predict(batches(), names)
    if len(index) != len(source):
        raise RuntimeError(f"{source.name}/{source.split}: {len(index)} of {len(source)} images")
    return out


def study(
    config: TrainConfig,
    mesh: Mesh,
    *,
    input_sizes: Sequence[int],
    feature_sets: Sequence[str] = FEATURE_SETS,
    flips: Sequence[bool] = (False, True),
) -> Iterator[dict[str, Any]]:
    """One result row per variant: nested-CV metrics of its probe, and what it cost."""
    config = resolve_pretrained(config)
    unknown = sorted(set(feature_sets) - set(FEATURE_SETS))
    if unknown:
        raise ValueError(f"unknown feature sets {unknown}; known: {FEATURE_SETS}")
    for size in input_sizes:
        sized = config.replace(input_size=size)
        data = open_run_data(sized)
        sources = [s for s in (data.train, data.val) if s is not None]
        records = [r for s in sources for r in s.records]
        labels = np.array([r.label for r in records])
        patients = [r.patient for r in records]
        num_classes = len(data.class_names)
        folds = patient_folds(
            patients, labels, min(config.cv_folds, len(set(patients))), config.seed
        )
        model = build_model(sized, num_classes)
        model.eval()
        names, widths = _feature_layout(model, config.in_channels)
        predictor = Predictor(model, data.metadata, mesh)
        batch = max(mesh.size, (config.eval_batch_size or 32) // mesh.size * mesh.size)
        columns = dict(zip(names, np.split(np.arange(sum(widths)), np.cumsum(widths)[:-1])))
        pooled = {}
        for flip in sorted(set(flips) | {False}):
            start = time.perf_counter()
            pooled[flip] = np.concatenate(
                [_extract(predictor, names, s, data.eval_cfg, batch, flip) for s in sources]
            )
            seconds = time.perf_counter() - start
        for flip in flips:
            for feature_set in feature_sets:
                keep = np.concatenate(
                    [columns[n] for n in (names if feature_set == "multi_stage" else names[-1:])]
                )
                x = pooled[False][:, keep]
                if flip:
                    x = (x + pooled[True][:, keep]) / 2
                start = time.perf_counter()
                cv = cross_validate(
                    x,
                    labels,
                    folds,
                    num_classes=num_classes,
                    balanced=config.balanced_weighting(np.bincount(labels).tolist()),
                    select=config.probe_select,
                )
                found = metrics.compute_metrics(
                    cv.oof_probabilities, labels, data.class_names, declared_tasks(config.dataset)
                )
                variant = Variant(size, feature_set, flip)
                yield {
                    "variant": variant.name,
                    **dataclasses.asdict(variant),
                    "model": config.model,
                    "dataset": config.dataset,
                    "classes": list(data.class_names),
                    "images": len(labels),
                    "patients": len(set(patients)),
                    "folds": int(folds.max()) + 1,
                    "feature_dims": int(x.shape[1]),
                    **{f"cv/{k}": round(found[k], 4) for k in HEADLINE if k in found},
                    **{
                        f"cv/recall/{n}": round(found[f"per_class/{n}/sensitivity"], 4)
                        for n in data.class_names
                    },
                    "nested_l2": cv.outer_l2.tolist(),
                    "extract_seconds_per_pass": round(seconds, 1),
                    "cv_seconds": round(time.perf_counter() - start, 1),
                }
