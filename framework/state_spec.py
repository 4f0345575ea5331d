"""The abstract train state of a built run, for tools that restore, time or write states.

What the trainer builds before its first step (an example batch, the optimizer, the
abstract TrainState and its shardings, the compiled train step) is built here, for the
trainer and for `tools.benchmark`, `tools.eval` and `tools.convert_checkpoint`, which need it
without running the training loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import ml_collections
import optax
from flax import linen as nn

from framework import flops as flops_lib
from framework import optim
from framework import sharding as sharding_lib
from framework import step as step_lib
from framework import train_state as state_lib
from framework.data import pipeline


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
    abstract_state: state_lib.TrainState
    shardings: state_lib.TrainState


class AbstractTraining(NamedTuple):
    """params: the abstract param tree (unboxed ShapeDtypeStructs); tx and schedule: the
    optimizer; abstract_state / shardings: TrainStates of ShapeDtypeStructs and of
    NamedShardings."""

    params: Any
    tx: optax.GradientTransformation
    schedule: Callable[[jax.Array], jax.Array]
    abstract_state: state_lib.TrainState
    shardings: state_lib.TrainState


def abstract_training(model: nn.Module, example: dict, config: ml_collections.ConfigDict,
                      mesh: Any, rules: Any) -> AbstractTraining:
    """Returns the AbstractTraining of `model` on the abstract global batch `example`, with
    `config`'s optimizer, schedule and total_steps, sharded over `mesh` by `rules`: what the
    trainer builds before its first step. Nothing is allocated."""
    boxed = state_lib.abstract_params(model, example)
    params = flops_lib.unbox(boxed)
    tx, schedule = optim.make_optimizer(config.optimizer, config.schedule, config.total_steps,
                                        params)
    abstract_state, shardings = state_lib.abstract_state_and_shardings(boxed, tx, mesh, rules)
    return AbstractTraining(params, tx, schedule, abstract_state, shardings)


def compile_train_step(run: Any, tx: optax.GradientTransformation,
                       schedule: Callable[[jax.Array], jax.Array],
                       abstract_state: state_lib.TrainState, shardings: state_lib.TrainState,
                       example: dict) -> Any:
    """Returns `run`'s train step (framework.step.make_train_step with its gradient
    accumulation) jitted with the state sharded by `shardings`, the batch as `example`'s
    shardings and the state donated, compiled for `abstract_state` and `example`; call it
    inside mesh_context(run) as compiled(state, batch) -> (state, metrics)."""
    train_step = step_lib.make_train_step(run.model, run.loss_fn, tx, schedule,
                                          run.grad_accum_steps)
    return jax.jit(
        train_step,
        in_shardings=(shardings, {k: v.sharding for k, v in example.items()}),
        out_shardings=(shardings, None),
        donate_argnums=(0,),
    ).lower(abstract_state, example).compile()


@contextlib.contextmanager
def mesh_context(run: Any) -> Iterator[None]:
    """Enters `run`'s mesh and logical-axis rules (as the trainer does around its loop)."""
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(sharding_lib.activation_rules(run.rules)):
        yield


def state_spec(run: Any, config: ml_collections.ConfigDict | None = None) -> StateSpec:
    """Builds the StateSpec of `run` (framework.trainer.build's Run) inside mesh_context.

    `config` (default: run.config) supplies the data, batch size, seed, optimizer and
    schedule; pass the training run's config to restore its checkpoints with another
    config's model and evaluators. Reads one batch from the train pipeline.
    """
    config = config if config is not None else run.config
    local = next(iter(pipeline.make_train_loader(config.data, config.batch_size, config.seed)))
    example = sharding_lib.abstract_global_batch(local, run.mesh)
    built = abstract_training(run.model, example, config, run.mesh, run.rules)
    return StateSpec(local, example, built.tx, built.schedule, built.abstract_state,
                     built.shardings)
