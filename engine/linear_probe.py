"""The paper's transfer learning: frozen backbone, cached features, a trained classifier.

Kermany et al. froze every convolution of an ImageNet Inception-V3, computed each image's
pooled "bottleneck" once, and trained only a new softmax layer on those (Adam, lr 1e-3,
batches of 1,000, ~100 epochs). Here the backbone runs once over every image (the engine's
one ``engine.predictor.Predictor``: sharded over the mesh, eval mode) to its ``pre_logits``;
the features are kept on the host and in ``<workdir>/cache/`` (so a resumed run skips them).
Then only the classifier trains:

- ``probe_solver="lbfgs"`` (default): :func:`solve_probe` solves it outright on train + val
  (engine.probe_fit: L-BFGS to convergence, balanced weights, L2 by patient-grouped CV, a
  nested-CV estimate), and :func:`with_classifier` writes it into the network;
- ``probe_solver="steps"``: the paper's minibatch recipe, batches drawn from the cache by a
  permutation that is a function of (seed, epoch), so a resumed run draws exactly the batches
  an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from data_pipelines.pipeline import make_eval_iterator
from data_pipelines.splits import class_balanced_order, patient_folds
from engine.config import TrainConfig
from engine.evaluation.validation import classification_metrics
from engine.inference import SkippedImages
from engine.losses import cross_entropy
from engine.mesh import batch_sharding, place_replicated
from engine.predictor import Predictor
from engine.probe_fit import DEFAULT_L2_GRID, LinearClassifier, ProbeCV, cross_validate
from engine.run_log import RunLog
from engine.state import TrainState
from engine.steps import jit_train_step, step_metrics
from engine.workdir import Workdir

FEATURES = "pre_logits"


def classifier_graphdef(model: nnx.Module, classifier_path: str) -> nnx.GraphDef:
    """The static half of the classifier sub-module (e.g. ``head``) of ``model``."""
    node = model
    for key in classifier_path.split("/"):
        node = node[int(key)] if key.isdigit() else getattr(node, key)
    return nnx.graphdef(node)


def cache_fingerprint(config: TrainConfig, paths: list[str], preprocess: Any) -> str:
    """Everything the features depend on; a cache with another fingerprint is recomputed.

    The model's identity (architecture, weights, input, dtype), the preprocessing and the
    ordered list of image paths: any change of split, classes, filters or skipped files
    changes the paths, so two sources never share a cache by having the same size.
    """
    keys = (
        "model",
        "pretrained",
        "init_from",
        "in_channels",
        "input_size",
        "model_kwargs",
        "dtype",
    )
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode() + b"\0")
    payload = {k: getattr(config, k) for k in keys} | {
        "preprocess": repr(preprocess),
        "paths": digest.hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


class SplitFeatures(NamedTuple):
    """One split's cached features; rows in source order, undecodable images left out."""

    features: np.ndarray  # float32 [N, D]
    labels: np.ndarray  # int32 [N]
    records: list[Any]  # the data_pipelines ExampleRecord of each row


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """The frozen backbone features are read from, and where they are cached and logged."""

    predictor: Predictor  # the run's model in eval mode (``Predictor.from_train_state``)
    config: TrainConfig
    eval_cfg: Any  # data_pipelines PreprocessConfig, no augmentation
    workdir: Workdir
    log: RunLog


def cached_features(extractor: FeatureExtractor, source: Any) -> SplitFeatures:
    """The features of every image of ``source`` (an ImageSource), computed once.

    Images that fail to decode under ``on_bad_image="skip"`` are left out (logged by name);
    the rows are the remaining examples in source order.
    """
    config, log, workdir = extractor.config, extractor.log, extractor.workdir
    split = source.split
    records = source.records
    fingerprint = cache_fingerprint(config, [r.path for r in records], extractor.eval_cfg)
    path = workdir.cache_dir / f"features_{split}_{fingerprint}.npz"
    all_labels = np.asarray([r.label for r in records], np.int32)
    if path.is_file():
        with np.load(path, allow_pickle=False) as cache:
            features, index = cache["features"], cache["index"]
        log.event("features", split=split, computed=0, cached=len(features), path=str(path))
        return SplitFeatures(features, all_labels[index], [records[i] for i in index])
    predictor = extractor.predictor
    batch = config.eval_batch_size or config.batch_size
    batches = SkippedImages(
        make_eval_iterator(
            source,
            extractor.eval_cfg,
            global_batch_size=batch,
            mesh=predictor.mesh,
            workers=config.workers,
        )
    )
    features, index = predictor.predict(batches, FEATURES)
    if not np.array_equal(index, batches.expected(len(source))):
        raise RuntimeError(
            f"feature extraction over {split} did not see every example exactly once"
        )
    skipped = batches.paths(records)
    if skipped:
        log.event("skipped_bad_images", split=split, count=len(skipped), paths=skipped)
    if jax.process_index() == 0:
        workdir.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, features=features, index=index)
        tmp.replace(path)
    log.event("features", split=split, computed=len(features), cached=0, path=str(path))
    return SplitFeatures(features, all_labels[index], [records[i] for i in index])


class FeatureBatches:
    """Endless global batches ``{"features", "label", "mask"}`` drawn from a feature cache.

    Step ``s`` reads rows ``perm_e[j*B:(j+1)*B]`` with ``e, j = divmod(s, steps_per_epoch)``
    and ``perm_e`` a permutation seeded by (seed, e): the position is the step, nothing else.
    ``get_state``/``set_state`` follow Grain's iterator protocol, so the checkpoint keeps the
    position as it keeps a Grain pipeline's (``grain.checkpoint.CheckpointSave``).
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        global_batch_size: int,
        mesh: Mesh,
        seed: int,
        start_step: int = 0,
        class_balanced: bool = False,
    ) -> None:
        self.features, self.labels = features, labels
        self.batch = global_batch_size
        self.mesh, self.seed = mesh, seed
        self.step = start_step
        self.epoch_order = (
            class_balanced_order(labels) if class_balanced else np.arange(len(labels))
        )
        if len(self.epoch_order) < global_batch_size:
            raise ValueError(
                f"{len(self.epoch_order)} cached examples per epoch < batch {global_batch_size}"
            )
        self.steps_per_epoch = len(self.epoch_order) // global_batch_size
        self._perm_epoch, self._perm = -1, None
        self.local = global_batch_size // jax.process_count()

    def __iter__(self) -> FeatureBatches:
        return self

    def _identity(self) -> dict[str, int]:
        """What a saved position is only valid for: the same draw over the same rows."""
        return {
            "seed": self.seed,
            "global_batch_size": self.batch,
            "examples_per_epoch": len(self.epoch_order),
        }

    def get_state(self) -> bytes:
        """The position as JSON bytes (Grain's protocol for iterators that are not datasets)."""
        return json.dumps({"step": self.step, **self._identity()}).encode()

    def set_state(self, state: bytes) -> None:
        """Continue from a position ``get_state`` returned; a different draw is refused."""
        saved = json.loads(state)
        wrong = [
            f"{key} {saved.get(key)} -> {value}"
            for key, value in self._identity().items()
            if saved.get(key) != value
        ]
        if wrong:
            raise ValueError(
                f"the saved feature-batch position belongs to another draw ({'; '.join(wrong)})"
            )
        self.step = int(saved["step"])

    def start_prefetch(self) -> None:
        """Nothing to prefetch (the rows are in host memory); Grain's restore calls it."""

    def __next__(self) -> dict[str, jax.Array]:
        epoch, j = divmod(self.step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.epoch_order)
            self._perm_epoch = epoch
        rows = self._perm[j * self.batch : (j + 1) * self.batch]
        mine = rows[jax.process_index() * self.local : (jax.process_index() + 1) * self.local]
        self.step += 1
        sharding = batch_sharding(self.mesh)
        local = {
            "features": self.features[mine],
            "label": self.labels[mine],
            "mask": np.ones(len(mine), bool),
        }
        return {
            k: jax.make_array_from_process_local_data(sharding, v, (self.batch, *v.shape[1:]))
            for k, v in local.items()
        }


def _classifier_params(params: dict, classifier_path: str) -> Any:
    node = params
    for key in classifier_path.split("/"):
        node = node[int(key)] if key.isdigit() and key not in node else node[key]
    return node


def make_probe_step(
    head_graphdef: nnx.GraphDef,
    classifier_path: str,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    config: TrainConfig,
    mesh: Mesh,
    class_weights: Any = None,
):
    """Jitted ``step(state, batch)`` that trains the classifier on cached features."""
    weights = None if class_weights is None else jnp.asarray(class_weights, jnp.float32)

    def step(state: TrainState, batch: dict[str, jax.Array]):
        labels, mask = batch["label"], batch["mask"]

        def loss_fn(params):
            head = nnx.merge(head_graphdef, _classifier_params(params, classifier_path))
            logits = head(batch["features"])
            loss = cross_entropy(
                logits, labels, mask, label_smoothing=config.label_smoothing, class_weights=weights
            )
            return loss, logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        metrics = step_metrics(loss, logits, labels, mask, grads, schedule(state.step))
        return state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
        ), metrics

    return jit_train_step(step, mesh)


def make_probe_evaluator(
    head_graphdef: nnx.GraphDef,
    classifier_path: str,
    features: np.ndarray,
    labels: np.ndarray,
    mesh: Mesh,
):
    """``evaluate(state) -> metrics`` of the classifier on cached (validation) features."""

    @jax.jit
    def probabilities(params, feats):
        head = nnx.merge(head_graphdef, _classifier_params(params, classifier_path))
        return jax.nn.softmax(head(feats).astype(jnp.float32), axis=-1)

    feats = place_replicated(features, mesh)

    def evaluate(state: TrainState) -> dict[str, float]:
        return classification_metrics(np.asarray(probabilities(state.params, feats)), labels)

    return evaluate


def with_classifier(params: dict, classifier_path: str, classifier: LinearClassifier) -> dict:
    """``params`` with the classifier at ``classifier_path`` replaced (other leaves shared)."""

    def replace(node: dict, keys: list[str]) -> dict:
        key = keys[0]
        key = int(key) if key.isdigit() and key not in node else key
        if len(keys) > 1:
            return {**node, key: replace(node[key], keys[1:])}
        head = node[key]
        kernel, bias = head["kernel"], head["bias"]
        if kernel.shape != classifier.kernel.shape:
            raise ValueError(
                f"fitted classifier {classifier.kernel.shape} does not fit {classifier_path} "
                f"{kernel.shape}"
            )
        return {
            **node,
            key: {
                **head,
                "kernel": jnp.asarray(classifier.kernel, kernel.dtype),
                "bias": jnp.asarray(classifier.bias, bias.dtype),
            },
        }

    return replace(params, classifier_path.split("/"))


@dataclasses.dataclass(frozen=True)
class SolvedProbe:
    """The L-BFGS probe of a run: its classifier and the cross-validation behind it."""

    classifier: LinearClassifier
    cv: ProbeCV
    labels: np.ndarray
    records: list[Any]
    balanced: bool
    l2: float


def solve_probe(
    parts: Sequence[SplitFeatures],
    config: TrainConfig,
    num_classes: int,
    log: RunLog,
) -> SolvedProbe:
    """Cross-validate and fit the classifier on every training image (train and val parts).

    The folds group patients, so no patient is on both sides of any fold; with fewer
    patients than ``cv_folds`` there are as many folds as patients.
    """
    features = np.concatenate([p.features for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    records = [r for p in parts for r in p.records]
    patients = [r.patient for r in records]
    counts = np.bincount(labels, minlength=num_classes)
    balanced = config.balanced_weighting(counts.tolist())
    folds_wanted = min(config.cv_folds, len(set(patients)))
    if folds_wanted < 2:
        raise ValueError(
            f"cross-validating the linear probe needs images of at least 2 patients; "
            f"found {len(set(patients))}"
        )
    folds = patient_folds(patients, labels, folds_wanted, config.seed)
    grid = DEFAULT_L2_GRID if config.probe_l2 is None else (*DEFAULT_L2_GRID, config.probe_l2)
    cv = cross_validate(
        features,
        labels,
        folds,
        num_classes=num_classes,
        balanced=balanced,
        select=config.probe_select,
        l2_grid=grid,
    )
    l2 = cv.l2 if config.probe_l2 is None else config.probe_l2
    classifier = cv.classifier(l2)
    log.event(
        "probe_fit",
        images=len(labels),
        class_counts=counts.tolist(),
        balanced_weighting=balanced,
        folds=folds_wanted,
        l2=l2,
        select=config.probe_select,
        cv=cv.table(),
        nested_cv_l2=cv.outer_l2.tolist(),
    )
    return SolvedProbe(classifier, cv, labels, records, balanced, l2)
