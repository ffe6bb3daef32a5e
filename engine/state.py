"""The train state (one typed pytree) and the static model definition the steps close over.

An NNX model is split once into a static ``GraphDef`` and plain nested dicts of arrays:

    trainable params | frozen params | BatchNorm statistics | the rest (RNG streams)

The jitted steps ``nnx.merge`` them back inside; no NNX object crosses the jit boundary.
Which parameters train is decided here from the transfer mode (``TrainConfig.transfer``):
everything (``scratch`` / ``finetune``), the last N stages plus the classifier
(``finetune_stages=N``), or the classifier only (``linear_probe``). BatchNorm layers outside
the trained stages always use their running statistics; inside them ``bn_mode`` decides.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

import models
from engine.config import AUTO, TrainConfig
from engine.mesh import place_replicated, replicated
from models.metadata import WeightMetadata

log = logging.getLogger(__name__)

Tree = dict[str, Any]


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree of arrays."""

    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Tree  # trainable parameters (full model paths)
    frozen: Tree  # parameters that do not train
    batch_stats: Tree  # BatchNorm running statistics
    opt_state: optax.OptState

    def model_variables(self) -> Tree:
        """``{"params": all parameters, "batch_stats": ...}``: what a checkpoint's "model" holds."""
        return {"params": merge_trees(self.params, self.frozen), "batch_stats": self.batch_stats}


@dataclasses.dataclass(frozen=True)
class ModelDef:
    """Static halves of the split model plus the facts the engine needs about it."""

    graphdef_train: nnx.GraphDef
    graphdef_eval: nnx.GraphDef
    rest: Any  # RNG streams etc.: not trained, not checkpointed, re-seeded per step
    trainable_units: tuple[str, ...] | None  # path prefixes whose parameters train; None: all
    classifier_path: str  # the (main) classifier, e.g. "head"

    def merge(
        self, params: Tree, frozen: Tree, batch_stats: Tree, *, train: bool, rest: Any = None
    ) -> nnx.Module:
        graphdef = self.graphdef_train if train else self.graphdef_eval
        return nnx.merge(graphdef, params, frozen, batch_stats, self.rest if rest is None else rest)

    def seeded_rest(self, key: jax.Array) -> Any:
        """The RNG streams for one step: stream i gets ``fold_in(key, i)`` and a zero count.

        ``key`` is the step's ``fold_in(seed, step)``, so a resumed run draws the same dropout
        and stochastic-depth masks as an uninterrupted one; distinct per-stream keys keep the
        layers' masks independent of each other.
        """
        flat, index = [], 0
        for path, var in nnx.to_flat_state(self.rest):
            if isinstance(var, nnx.RngKey):
                var = var.replace(jax.random.fold_in(key, index))
                index += 1
            elif isinstance(var, nnx.RngCount):
                var = var.replace(jnp.zeros_like(var[...]))
            flat.append((path, var))
        # Plain arrays, so that merging inside a transform (jax.grad) makes fresh Variables there.
        return nnx.to_pure_dict(nnx.from_flat_state(flat))


def stage_units(model: nnx.Module, input_shape: tuple[int, ...]) -> list[str]:
    """The parameterised building blocks of ``model`` in forward order (``stem``, ... ``head``).

    A unit is a top-level attribute holding parameters (``stem``, ``stage1``, ``head_conv``,
    ``head``), except that each element of a list named ``stages`` is a unit of its own
    (``stages/0``, ``stages/1``, ...): the two conventions of this repository's families.
    Order is the order in which the forward pass (traced abstractly on ``input_shape``, NHWC
    with batch 1) first uses each unit's parameters, so it does not depend on how the
    attributes happen to be stored. Units the eval-mode forward never uses (an auxiliary
    head) come last.
    """
    _, params, rest = nnx.split(model, nnx.Param, ...)
    flat = list(nnx.to_flat_state(params))

    def unit_of(path: tuple) -> str:
        if path[0] == "stages" and len(path) > 1 and str(path[1]).isdigit():
            return f"stages/{path[1]}"
        return str(path[0])

    units = [unit_of(path) for path, _ in flat]
    graphdef = nnx.graphdef(model)

    def forward(leaves: list[jax.Array], others: Any, x: jax.Array) -> jax.Array:
        state = nnx.from_flat_state(
            [(p, v.replace(leaf)) for (p, v), leaf in zip(flat, leaves, strict=True)]
        )
        net = nnx.merge(graphdef, state, others)
        net.eval()
        return net(x)[0]

    shape_of = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)
    abstract = [shape_of(x) for _, v in flat for x in jax.tree.leaves(v)]
    image = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    jaxpr = jax.make_jaxpr(forward)(abstract, jax.tree.map(shape_of, rest), image).jaxpr
    position = {id(var): i for i, var in enumerate(jaxpr.invars[: len(flat)])}
    order: list[str] = []
    for eqn in jaxpr.eqns:
        for var in eqn.invars:
            unit = units[position[id(var)]] if id(var) in position else None
            if unit is not None and unit not in order:
                order.append(unit)
    return order + [u for u in dict.fromkeys(units) if u not in order]


def _under(path: tuple, prefixes: tuple[str, ...]) -> bool:
    key = "/".join(str(p) for p in path)
    return any(key == p or key.startswith(p.rstrip("/") + "/") for p in prefixes)


def trainable_units(
    model: nnx.Module, config: TrainConfig, metadata: WeightMetadata
) -> tuple[str, ...] | None:
    """Path prefixes of the parameters that train under ``config.transfer`` (None: all)."""
    classifiers = tuple(metadata.classifier_paths)
    if config.transfer == "linear_probe":
        return classifiers[:1]
    if config.transfer == "scratch" or config.finetune_stages is None:
        return None
    units = stage_units(model, (metadata.input_size, metadata.input_size, config.in_channels))
    backbone = [  # units that hold no classifier (Inception's aux_head holds aux_head/fc)
        u
        for u in units
        if not _under(tuple(u.split("/")), classifiers)
        and not any(_under(tuple(c.split("/")), (u,)) for c in classifiers)
    ]
    if config.finetune_stages > len(backbone):
        raise ValueError(
            f"--finetune_stages={config.finetune_stages} but {config.model} has "
            f"{len(backbone)} backbone stages: {', '.join(backbone)}"
        )
    top = backbone[len(backbone) - config.finetune_stages :] if config.finetune_stages else []
    return tuple(top) + classifiers


def _trains(path: tuple, units: tuple[str, ...] | None) -> bool:
    return units is None or _under(path, units)


def _set_modes(
    model: nnx.Module, units: tuple[str, ...] | None, config: TrainConfig, *, train: bool
) -> None:
    if config.dtype == "bfloat16":  # compute dtype; parameters and statistics stay float32
        model.set_attributes(dtype=jnp.bfloat16, raise_if_not_found=False)
    if not train:
        model.eval()
        return
    model.train()
    for path, module in nnx.iter_graph(model):
        if isinstance(module, nnx.BatchNorm):
            frozen = (
                not _trains(path, units)
                or config.bn_mode == "frozen"
                or config.transfer == "linear_probe"
            )
            if frozen:
                module.use_running_average = True


def split_model(
    model: nnx.Module, config: TrainConfig, metadata: WeightMetadata
) -> tuple[ModelDef, Tree, Tree, Tree]:
    """-> (ModelDef, trainable params, frozen params, batch stats) as pure nested dicts.

    Mutates ``model``'s mode attributes (train/eval, compute dtype); split it last.
    """
    units = trainable_units(model, config, metadata)
    trainable = nnx.All(nnx.Param, lambda path, _: _trains(path, units))
    _set_modes(model, units, config, train=False)
    graphdef_eval, *_ = nnx.split(model, trainable, nnx.Param, nnx.BatchStat, ...)
    _set_modes(model, units, config, train=True)
    graphdef_train, params, frozen, stats, rest = nnx.split(
        model, trainable, nnx.Param, nnx.BatchStat, ...
    )
    model_def = ModelDef(graphdef_train, graphdef_eval, rest, units, metadata.classifier_paths[0])
    return model_def, nnx.to_pure_dict(params), nnx.to_pure_dict(frozen), nnx.to_pure_dict(stats)


def merge_trees(a: Tree, b: Tree) -> Tree:
    """Union of two nested dicts with disjoint leaves."""
    out = dict(a)
    for key, value in b.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge_trees(out[key], value)
        elif key in out:
            raise ValueError(f"key {key!r} present in both trees")
        else:
            out[key] = value
    return out


def subtree(tree: Tree, like: Tree) -> Tree:
    """The part of ``tree`` whose structure is ``like``'s (inverse of :func:`merge_trees`)."""
    return {k: subtree(tree[k], v) if isinstance(v, dict) else tree[k] for k, v in like.items()}


def resolve_pretrained(config: TrainConfig) -> TrainConfig:
    """``pretrained="auto"`` -> the model's single registered tag (None for scratch or none)."""
    if config.pretrained == AUTO:
        tags = [t for t in models.list_pretrained() if t.split(".")[0] == config.model]
        chosen = tags[0] if config.transfer != "scratch" and len(tags) == 1 else None
        config = config.replace(pretrained=chosen)
    if config.pretrained is None and config.transfer != "scratch" and not config.init_from:
        log.warning(
            "%s with no pretrained weights: the backbone starts from random initialisation "
            "(pass --pretrained=FILE_OR_TAG)",
            config.transfer,
        )
    return config


def build_model(config: TrainConfig, num_classes: int, *, pretrained: bool = True) -> nnx.Module:
    """The model the config asks for, on the host (weights loaded strictly when pretrained)."""
    config = resolve_pretrained(config)
    return models.create(
        config.model,
        num_classes=num_classes,
        pretrained=config.pretrained if pretrained else None,
        in_channels=config.in_channels,
        rngs=nnx.Rngs(config.seed),
        **config.model_kwargs,
    )


def init_train_state(
    model: nnx.Module,
    config: TrainConfig,
    metadata: WeightMetadata,
    tx: optax.GradientTransformation,
    mesh: Mesh,
) -> tuple[ModelDef, TrainState]:
    """Split ``model``, place its arrays replicated on ``mesh`` and initialise the optimizer
    there."""
    model_def, params, frozen, stats = split_model(model, config, metadata)
    params, frozen, stats = place_replicated((params, frozen, stats), mesh)
    model_def = dataclasses.replace(model_def, rest=place_replicated_keys(model_def.rest, mesh))
    opt_state = jax.jit(tx.init, out_shardings=replicated(mesh))(params)
    step = place_replicated(jnp.zeros((), jnp.int32), mesh)
    return model_def, TrainState(
        step=step, params=params, frozen=frozen, batch_stats=stats, opt_state=opt_state
    )


def place_replicated_keys(rest: Any, mesh: Mesh) -> Any:
    """RNG key state replicated on the mesh (typed keys go through their raw data)."""

    def place(x: Any) -> Any:
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            return jax.random.wrap_key_data(
                place_replicated(jax.random.key_data(x), mesh), impl=impl
            )
        return place_replicated(x, mesh)

    return jax.tree.map(place, rest)
