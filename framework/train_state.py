"""The train state (step, params, optimizer state, rng) and its sharding.

Params are created directly in their shardings: the init function is jitted with
`out_shardings`, so no host ever holds a full copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from framework import flops as flops_lib
from framework import sharding as sharding_lib


@flax.struct.dataclass
class TrainState:
    """What a checkpoint holds of the model and optimizer.

    step: int32 (); params: the model's param tree; opt_state: the optax state;
    rng: uint32 (2,) raw key data, the run's base key (each step folds the step in).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array

    def step_key(self, name: str) -> jax.Array:
        """Returns a typed PRNG key for this step and the stream `name` ("dropout", ...)."""
        base = jax.random.wrap_key_data(self.rng)
        return jax.random.fold_in(jax.random.fold_in(base, self.step), _stream_id(name))


def _stream_id(name: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(name)) % (2**31)


def init_params_fn(model: nn.Module, example_batch: dict) -> Callable[[jax.Array], Any]:
    """Returns rng -> boxed param tree, initialising `model` on a batch of one example.

    `example_batch` holds (abstract) arrays whose shapes after the leading batch dim are
    those of one example.
    """

    def init(rng: jax.Array) -> Any:
        one = {k: jnp.zeros((1,) + tuple(v.shape[1:]), v.dtype) for k, v in example_batch.items()}
        params_rng, dropout_rng = jax.random.split(rng)
        variables = model.init({"params": params_rng, "dropout": dropout_rng}, one, train=False)
        return variables["params"]

    return init


def abstract_params(model: nn.Module, example_batch: dict) -> Any:
    """Returns the param tree of `model` as ShapeDtypeStructs boxed with logical axis names."""
    return jax.eval_shape(init_params_fn(model, example_batch), jax.random.key(0))


def abstract_state_and_shardings(
    boxed_params: Any,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    rules: sharding_lib.Rules,
) -> tuple[TrainState, TrainState]:
    """Returns (abstract TrainState of ShapeDtypeStructs, TrainState of NamedShardings).

    `boxed_params` comes from `abstract_params`. Nothing is allocated.
    """
    params_shardings = sharding_lib.param_shardings(boxed_params, mesh, rules)
    params = flops_lib.unbox(boxed_params)
    opt_state = jax.eval_shape(tx.init, params)
    opt_shardings = sharding_lib.state_shardings_like(opt_state, params, params_shardings, mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    abstract = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=params,
        opt_state=opt_state,
        rng=jax.ShapeDtypeStruct((2,), jnp.uint32),
    )
    shardings = TrainState(step=replicated, params=params_shardings, opt_state=opt_shardings,
                           rng=replicated)
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    return abstract, shardings


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    example_batch: dict,
    shardings: TrainState,
    seed: int,
) -> TrainState:
    """Initialises params and optimizer state straight into `shardings`, from `seed`."""
    init = init_params_fn(model, example_batch)

    def create() -> TrainState:
        base = jax.random.key(seed)
        init_rng, run_rng = jax.random.split(base)
        params = flops_lib.unbox(init(init_rng))
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            rng=jax.random.key_data(run_rng),
        )

    return jax.jit(create, out_shardings=shardings)()
