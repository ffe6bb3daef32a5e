"""One classifier's forward on a mesh: the engine's one inference path.

Validation during training, evaluation, prediction, the linear probe's feature caching, the
dense task's well tiling and occlusion all run through a :class:`Predictor`:

    predictor = Predictor(run.model, run.metadata, mesh)
    probs, index = predictor.predict(make_eval_iterator(source, ...))   # a data source
    probs = predictor.probabilities(images)                             # uint8 host images
    occlusion_sensitivity(predictor.apply_fn, predictor.variables, images, ...)

    predictor = Predictor.from_train_state(model_def, state, metadata, mesh)   # the trainer's
    probs, index = predictor.predict(batches, variables=eval_states(model_def, newer_state))

Every path is ``engine.steps.model_forward`` (normalisation on the device with the weights'
mean/std, softmax in float32) jitted by ``engine.steps.shard_forward`` (images sharded on the
``data`` axis, the model replicated). The model's state is put on the mesh once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from engine.evaluation.validation import gather_outputs
from engine.state import ModelDef, TrainState, place_replicated_keys
from engine.steps import Forward, make_forward, model_forward
from models.metadata import WeightMetadata

DEFAULT_MAX_BATCH = 256  # host images per forward (over all devices)


class Predictor:
    """``model`` (an NNX classifier, put in eval mode) fed as ``metadata`` says, on ``mesh``."""

    def __init__(
        self, model: nnx.Module, metadata: WeightMetadata, mesh: Mesh, *, dtype: Any = jnp.float32
    ):
        model.eval()
        graphdef, state = nnx.split(model)
        self._setup(graphdef, (place_replicated_keys(state, mesh),), metadata, mesh, dtype)

    @classmethod
    def from_states(
        cls,
        graphdef: nnx.GraphDef,
        states: tuple[Any, ...],
        metadata: WeightMetadata,
        mesh: Mesh,
        *,
        dtype: Any = jnp.float32,
    ) -> Predictor:
        """A predictor on a model kept split (the trainer's ``(params, frozen, batch_stats,
        rest)``, already on the mesh); ``graphdef`` must be in eval mode."""
        predictor = cls.__new__(cls)
        predictor._setup(graphdef, tuple(states), metadata, mesh, dtype)
        return predictor

    @classmethod
    def from_train_state(
        cls,
        model_def: ModelDef,
        state: TrainState,
        metadata: WeightMetadata,
        mesh: Mesh,
        *,
        dtype: Any = jnp.float32,
    ) -> Predictor:
        """The trainer's model in eval mode: validation, feature caching and the dense task's
        well tiling predict with it, passing each newer state as ``eval_states``."""
        return cls.from_states(
            model_def.graphdef_eval, eval_states(model_def, state), metadata, mesh, dtype=dtype
        )

    def _setup(self, graphdef, variables, metadata, mesh, dtype) -> None:
        self.graphdef, self.variables = graphdef, variables
        self.metadata, self.mesh, self.dtype = metadata, mesh, dtype
        # Occlusion's ApplyFn: (variables, pixel images, uint8 or float 0-255) -> logits. One
        # object per predictor, so occlusion's compilation caches (keyed on it) are reused.
        self.apply_fn = model_forward(graphdef, metadata, output="logits", dtype=dtype, pixels=True)
        self._forwards: dict[Any, Forward] = {}

    def forward(self, output: str | tuple[str, ...] = "probabilities") -> Forward:
        """The sharded ``forward(variables, images)`` for ``output`` (compiled once per shape)."""
        if output not in self._forwards:
            self._forwards[output] = make_forward(
                self.graphdef, self.metadata, self.mesh, output=output, dtype=self.dtype
            )
        return self._forwards[output]

    def predict(
        self,
        batches: Iterable[dict[str, Any]],
        output: str | tuple[str, ...] = "probabilities",
        *,
        variables: tuple[Any, ...] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``output`` for every real example of eval ``batches`` -> (outputs [N, ...], index [N]).

        ``batches``: ``data_pipelines.pipeline.make_eval_iterator`` global batches (``image``
        uint8, or float taken as normalised; ``index``, ``mask``); padding is dropped and rows
        come back sorted by source index, each exactly once over devices and processes.
        ``variables``: newer states of the same model (validation during training).
        """
        states = self.variables if variables is None else variables
        return gather_outputs(self.forward(output), states, batches)

    def probabilities(
        self, images: np.ndarray, *, max_batch: int = DEFAULT_MAX_BATCH
    ) -> np.ndarray:
        """``[N, K]`` softmax of host pixel images ``[N, H, W, C]`` (uint8 or float 0-255)."""
        forward = self._forwards.get("pixel_probabilities")
        if forward is None:
            forward = make_forward(
                self.graphdef, self.metadata, self.mesh, dtype=self.dtype, pixels=True
            )
            self._forwards["pixel_probabilities"] = forward
        return host_batched(forward, self.variables, images, max_batch=max_batch, mesh=self.mesh)


def eval_states(model_def: ModelDef, state: TrainState) -> tuple[Any, ...]:
    """The states ``model_def.graphdef_eval`` merges with, taken from a train ``state``."""
    return (state.params, state.frozen, state.batch_stats, model_def.rest)


def host_batched(
    forward: Forward, variables: Any, images: np.ndarray, *, max_batch: int, mesh: Mesh
) -> np.ndarray:
    """``forward(variables, batch)`` over host ``images`` in padded batches, padding dropped.

    Fewer than ``max_batch`` images run as one batch padded to a power-of-two multiple of the
    device count (few distinct shapes to compile, little padding: one image costs one forward).
    """
    images = np.asarray(images)
    full = max(mesh.size, max_batch // mesh.size * mesh.size)
    per_device = -(-len(images) // mesh.size)
    step = min(full, mesh.size * (1 << max(per_device - 1, 0).bit_length()))
    out = []
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        padded = np.zeros((step, *images.shape[1:]), images.dtype)
        padded[: len(chunk)] = chunk
        out.append(np.asarray(jax.device_get(forward(variables, padded)))[: len(chunk)])
    if not out:
        raise ValueError("no images to run the model on")
    return np.concatenate(out)
