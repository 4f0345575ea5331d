"""The train state, from abstract shapes and shardings to the compiled step that updates it.

`TrainState` is what a checkpoint holds. Everything the trainer builds before its first step
(the abstract state and its shardings, the optimizer, the state itself, the compiled train
step) is built here, for the trainer and for the tools that restore, time or write states
(`tools.eval`, `tools.benchmark`, `tools.convert_checkpoint`). Params are created directly
in their shardings (the init is jitted with `out_shardings`): no host holds a full copy.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from framework import optim, registry
from framework import sharding as sharding_lib
from framework import step as step_lib
from framework.data import pipeline
from framework.trees import unbox

# Collections a model's init may write that are not state (sown values for inspection).
NOT_STATE = ("params", "intermediates")
_OPTIONAL = ("collections", "ema_params")


@jax.tree_util.register_pytree_with_keys_class
@dataclasses.dataclass(frozen=True)
class TrainState:
    """What a checkpoint holds of the model and optimizer.

    step: int32 (); params: the model's param tree; opt_state: the optax state;
    rng: uint32 (2,) raw key data, the run's base key (each step folds the step in);
    collections: the model's mutable collections ({"batch_stats": ...}; {} for most models);
    ema_params: the EMA of the params (None without `config.ema.decay`). The two optional
    fields are left out of the tree when empty, so a checkpoint of a state without them has
    the same tree as one written before they existed.
    """

    step: Any
    params: Any
    opt_state: Any
    rng: Any
    collections: Any = dataclasses.field(default_factory=dict)
    ema_params: Any = None

    def tree_flatten_with_keys(self):
        names = ("step", "params", "opt_state", "rng") + tuple(
            name for name in _OPTIONAL if getattr(self, name))
        return [(jax.tree_util.GetAttrKey(n), getattr(self, n)) for n in names], names

    @classmethod
    def tree_unflatten(cls, names, children):
        return cls(**dict(zip(names, children)))

    def replace(self, **changes: Any) -> TrainState:
        """Returns a copy with the given fields replaced."""
        return dataclasses.replace(self, **changes)

    def step_key(self, name: str) -> jax.Array:
        """Returns a typed PRNG key for this step and the stream `name` ("dropout", ...)."""
        base = jax.random.wrap_key_data(self.rng)
        return jax.random.fold_in(jax.random.fold_in(base, self.step), _stream_id(name))

    def eval_variables(self) -> dict:
        """Returns what the evaluators run the model with: {"params": the EMA params when
        there are any, else the params, plus the mutable collections}."""
        params = self.ema_params if self.ema_params is not None else self.params
        return {"params": params, **self.collections}


def _stream_id(name: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(name)) % (2**31)


def init_variables_fn(model: nn.Module, example_batch: dict) -> Callable[[jax.Array], dict]:
    """Returns rng -> boxed {"params": ..., **mutable collections}, initialising `model` on
    a batch of one example; `example_batch` holds (abstract) arrays whose shapes after the
    leading batch dim are those of one example."""

    def init(rng: jax.Array) -> dict:
        one = {k: jnp.zeros((1,) + tuple(v.shape[1:]), v.dtype) for k, v in example_batch.items()}
        params_rng, dropout_rng = jax.random.split(rng)
        variables = model.init({"params": params_rng, "dropout": dropout_rng}, one, train=False)
        collections = {k: v for k, v in variables.items() if k not in NOT_STATE}
        return {"params": variables["params"], **collections}

    return init


def abstract_state_and_shardings(boxed: dict, tx: optax.GradientTransformation, mesh: Mesh,
                                 rules: sharding_lib.Rules,
                                 ema: bool = False) -> tuple[TrainState, TrainState]:
    """Returns (abstract TrainState of ShapeDtypeStructs, TrainState of NamedShardings).

    `boxed` is the abstract {"params", **collections} of `init_variables_fn` (boxed with
    logical axis names); `ema` adds EMA params sharded as the params. Nothing is allocated.
    """
    shardings = sharding_lib.param_shardings(boxed, mesh, rules)
    variables = unbox(boxed)
    params, params_shardings = variables.pop("params"), shardings.pop("params")
    opt_state = jax.eval_shape(tx.init, params)
    opt_shardings = sharding_lib.state_shardings_like(opt_state, params, params_shardings, mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    abstract = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32), params=params, opt_state=opt_state,
        rng=jax.ShapeDtypeStruct((2,), jnp.uint32), collections=variables,
        ema_params=params if ema else None)
    shardings = TrainState(
        step=replicated, params=params_shardings, opt_state=opt_shardings, rng=replicated,
        collections=shardings, ema_params=params_shardings if ema else None)
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    return abstract, shardings


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       example_batch: dict, shardings: TrainState, seed: int) -> TrainState:
    """Initialises the state straight into `shardings`, from `seed`; the EMA params (when
    `shardings` has them) start as a copy of the params."""
    init = init_variables_fn(model, example_batch)

    def create() -> TrainState:
        init_rng, run_rng = jax.random.split(jax.random.key(seed))
        variables = unbox(init(init_rng))
        params = variables.pop("params")
        ema = jax.tree.map(jnp.copy, params) if shardings.ema_params is not None else None
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=tx.init(params), rng=jax.random.key_data(run_rng),
                          collections=variables, ema_params=ema)

    return jax.jit(create, out_shardings=shardings)()


class AbstractTraining(NamedTuple):
    """params: the abstract param tree (unboxed ShapeDtypeStructs); tx and schedule: the
    optimizer; abstract_state / shardings: TrainStates of ShapeDtypeStructs and of
    NamedShardings."""

    params: Any
    tx: optax.GradientTransformation
    schedule: Callable[[jax.Array], jax.Array]
    abstract_state: TrainState
    shardings: TrainState


def abstract_training(model: nn.Module, example: dict, config: ml_collections.ConfigDict,
                      mesh: Any, rules: Any) -> AbstractTraining:
    """Returns the AbstractTraining of `model` on the abstract global batch `example`, with
    `config`'s optimizer, schedule, total_steps and EMA, sharded over `mesh` by `rules`:
    what the trainer builds before its first step. Nothing is allocated."""
    boxed = jax.eval_shape(init_variables_fn(model, example), jax.random.key(0))
    params = unbox(boxed["params"])
    tx, schedule = optim.make_optimizer(config.optimizer, config.schedule, config.total_steps,
                                        params)
    abstract_state, shardings = abstract_state_and_shardings(
        boxed, tx, mesh, rules, ema=bool(config.ema.decay))
    return AbstractTraining(params, tx, schedule, abstract_state, shardings)


@dataclasses.dataclass
class StateSpec:
    """local_batch: one host batch of the train pipeline (dict of numpy arrays);
    example: its global abstract batch (ShapeDtypeStructs with shardings); tx and schedule:
    the optimizer; abstract_state / shardings: TrainStates of ShapeDtypeStructs and of
    NamedShardings."""

    local_batch: dict
    example: dict
    tx: optax.GradientTransformation
    schedule: Callable[[jax.Array], jax.Array]
    abstract_state: TrainState
    shardings: TrainState


def state_spec(run: Any, config: ml_collections.ConfigDict | None = None) -> StateSpec:
    """Builds the StateSpec of `run` (framework.trainer.build's Run) inside mesh_context.

    `config` (default: run.config) supplies the data, batch size, seed, optimizer, schedule
    and EMA; pass the training run's config to restore its checkpoints with another
    config's model and evaluators. Reads one batch from the train pipeline.
    """
    config = config if config is not None else run.config
    local = next(iter(pipeline.make_train_loader(config.data, config.batch_size, config.seed)))
    example = sharding_lib.abstract_global_batch(local, run.mesh)
    built = abstract_training(run.model, example, config, run.mesh, run.rules)
    return StateSpec(local, example, built.tx, built.schedule, built.abstract_state,
                     built.shardings)


def train_step_fn(run: Any, tx: optax.GradientTransformation,
                  schedule: Callable[[jax.Array], jax.Array], model: nn.Module | None = None,
                  grad_accum_steps: int | None = None) -> step_lib.StepFn:
    """Returns `run`'s train step (its config.train_step factory given `run`'s model, loss,
    gradient accumulation and EMA decay, and `tx` / `schedule`), not jitted; `model` and
    `grad_accum_steps` replace run's (tools.benchmark counts FLOPs of an unrolled step)."""
    parts = step_lib.StepParts(
        model=run.model if model is None else model, loss_fn=run.loss_fn, tx=tx,
        schedule=schedule,
        grad_accum_steps=run.grad_accum_steps if grad_accum_steps is None else grad_accum_steps,
        ema_decay=float(run.config.ema.decay))
    return run.make_step(parts)


# Compiled train steps kept for reuse in this process (None: off); see reuse_compiled_steps.
_COMPILED_STEPS: collections.OrderedDict | None = None
_KEPT_STEPS = 4


def reuse_compiled_steps(enabled: bool = True) -> None:
    """Turns on (or off, clearing it) the reuse of compiled train steps within this process:
    compile_train_step then returns the step it compiled before for a run with the same
    config, registered model / loss / train-step factories, mesh, and state and batch
    shapes and shardings (a resumed run, repeated identical runs), skipping its trace and
    compile. Off by default: code patched between two such runs (a test's monkeypatch)
    would not reach the reused step."""
    global _COMPILED_STEPS
    _COMPILED_STEPS = collections.OrderedDict() if enabled else None


def _step_key(run: Any, abstract_state: TrainState, example: dict) -> tuple:
    config = run.config
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    pieces = (type(run.model), registry.LOSSES.get(config.loss.name),
              getattr(run.make_step, "func", run.make_step))
    leaves, tree = jax.tree.flatten((abstract_state, example))
    shapes = tuple((x.shape, str(x.dtype), x.sharding) for x in leaves)
    return text, pieces, run.mesh, str(tree), shapes


def compile_train_step(run: Any, tx: optax.GradientTransformation,
                       schedule: Callable[[jax.Array], jax.Array],
                       abstract_state: TrainState, shardings: TrainState,
                       example: dict) -> Any:
    """Returns `run`'s train step (`train_step_fn`) jitted with the state sharded by
    `shardings`, the batch as `example`'s shardings and the state donated, compiled for
    `abstract_state` and `example` (or, with reuse_compiled_steps on, the one compiled
    earlier for the same run); call it inside mesh_context(run) as
    compiled(state, batch) -> (state, metrics)."""
    key = _step_key(run, abstract_state, example) if _COMPILED_STEPS is not None else None
    if key is not None and key in _COMPILED_STEPS:
        _COMPILED_STEPS.move_to_end(key)
        return _COMPILED_STEPS[key]
    compiled = jax.jit(
        train_step_fn(run, tx, schedule),
        in_shardings=(shardings, {k: v.sharding for k, v in example.items()}),
        out_shardings=(shardings, None),
        donate_argnums=(0,),
    ).lower(abstract_state, example).compile()
    if key is not None:
        _COMPILED_STEPS[key] = compiled
        while len(_COMPILED_STEPS) > _KEPT_STEPS:
            _COMPILED_STEPS.popitem(last=False)
    return compiled


@contextlib.contextmanager
def mesh_context(run: Any) -> Iterator[None]:
    """Enters `run`'s mesh and logical-axis rules (as the trainer does around its loop)."""
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.activation_rules(run.rules)):
        yield
