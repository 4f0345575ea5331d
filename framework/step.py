"""The train step, built from shared pieces that a project's own step reuses.

Pieces: `model_objective` (the model's loss, its auxiliary losses and its mutable
collections), `value_and_grads` (gradients, accumulated over micro-batches) and
`apply_gradients` (optimizer update behind the non-finite guard, EMA, step count).
`make_train_step` composes them; `config.train_step.name` picks a factory from
registry.TRAIN_STEPS ("default" is `make_train_step` with the model's objective). A project
registers its own step by giving `make_train_step` another objective (TokenLearner's
mean-teacher step does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from framework import registry

LossFn = Callable[[Any, dict], tuple[jax.Array, dict]]
# objective(params, collections, batch, rng, state) -> (loss, (metrics, new collections)).
Objective = Callable[[Any, dict, dict, jax.Array, Any], tuple[jax.Array, tuple[dict, dict]]]
StepFn = Callable[[Any, dict], tuple[Any, dict]]

# Metrics every step reports; a loss's own metrics must use other names.
STEP_METRICS = ("loss", "grad_norm", "param_norm", "lr", "nonfinite")


@dataclasses.dataclass(frozen=True)
class StepParts:
    """What a train step factory is given: the model and its loss (loss(outputs, batch) ->
    (scalar, metrics)), the optimizer and its schedule (step -> lr), how many micro-batches
    a batch is split into, and the EMA decay of the params (0 = no EMA)."""

    model: nn.Module
    loss_fn: LossFn
    tx: optax.GradientTransformation
    schedule: Callable[[jax.Array], jax.Array]
    grad_accum_steps: int = 1
    ema_decay: float = 0.0


def apply_model(model: nn.Module, params: Any, collections: dict, batch: dict,
                rng: jax.Array | None, train: bool = True) -> tuple[Any, dict]:
    """Runs `model` on `batch`; returns (outputs, collections after the call).

    `collections` are the model's mutable collections ({"batch_stats": ...}, or {}); in
    training they are updated by the call, in eval (`train=False`) only read.
    """
    variables = {"params": params, **collections}
    rngs = {"dropout": rng} if rng is not None else None
    if train and collections:
        outputs, new = model.apply(variables, batch, train=True, rngs=rngs,
                                   mutable=list(collections))
        return outputs, dict(new)
    return model.apply(variables, batch, train=train, rngs=rngs), collections


def add_aux_losses(loss: jax.Array, metrics: dict, outputs: Any) -> tuple[jax.Array, dict]:
    """Adds the model's auxiliary losses to `loss`.

    A model returning a dict may put {name: scalar} under "aux_losses"; each is added to the
    loss and reported as metric `aux_loss/<name>`. Returns (loss, metrics).
    """
    aux = outputs.get("aux_losses", {}) if isinstance(outputs, dict) else {}
    if not aux:
        return loss, metrics
    metrics = {**metrics, **{f"aux_loss/{name}": value for name, value in aux.items()}}
    return loss + sum(aux.values()), metrics


def model_objective(model: nn.Module, loss_fn: LossFn) -> Objective:
    """Returns the objective of the model's own loss: outputs = model(batch), loss_fn(outputs,
    batch) plus the model's auxiliary losses (`add_aux_losses`)."""

    def objective(params, collections, batch, rng, state):
        del state
        outputs, collections = apply_model(model, params, collections, batch, rng)
        loss, metrics = add_aux_losses(*loss_fn(outputs, batch), outputs)
        return loss, (metrics, collections)

    return objective


def split_micro_batches(batch: dict, num_micro: int) -> dict:
    """Reshapes each array (B, ...) to (num_micro, B / num_micro, ...).

    Micro-batch j takes examples j, j + num_micro, j + 2 * num_micro, ..., so that every
    device holds an equal part of every micro-batch when B is split over devices.
    """
    def one(x):
        x = x.reshape((x.shape[0] // num_micro, num_micro) + x.shape[1:])
        x = jnp.swapaxes(x, 0, 1)
        return nn.with_logical_constraint(x, (None, "batch") + (None,) * (x.ndim - 2))

    return jax.tree.map(one, batch)


def value_and_grads(objective: Objective, state: Any, batch: dict, rng: jax.Array,
                    grad_accum_steps: int = 1) -> tuple[jax.Array, dict, dict, Any]:
    """Returns (loss, metrics, collections, grads) of `objective` at `state.params`.

    With `grad_accum_steps` > 1 the batch is split into that many micro-batches (each with
    its own rng); loss, metrics and gradients are their means, which is the full-batch
    gradient with less activation memory, and the collections pass from one micro-batch to
    the next.
    """
    grad_fn = jax.value_and_grad(objective, has_aux=True)
    if grad_accum_steps == 1:
        (loss, (metrics, collections)), grads = grad_fn(
            state.params, state.collections, batch, rng, state)
        return loss, metrics, collections, grads
    micro = split_micro_batches(batch, grad_accum_steps)

    def accumulate(carry, xs):
        sums, collections = carry
        index, one = xs
        (loss, (metrics, collections)), grads = grad_fn(
            state.params, collections, one, jax.random.fold_in(rng, index), state)
        return (jax.tree.map(jnp.add, sums, (loss, metrics, grads)), collections), None

    first = jax.tree.map(lambda x: x[0], micro)
    shapes = jax.eval_shape(grad_fn, state.params, state.collections, first, rng, state)
    (_, (metric_shapes, _)), _ = shapes
    zeros = (jnp.zeros((), jnp.float32),
             jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metric_shapes),
             jax.tree.map(jnp.zeros_like, state.params))
    (sums, collections), _ = jax.lax.scan(
        accumulate, (zeros, state.collections), (jnp.arange(grad_accum_steps), micro))
    loss, metrics, grads = jax.tree.map(lambda x: x / grad_accum_steps, sums)
    return loss, metrics, collections, grads


def apply_gradients(state: Any, grads: Any, loss: jax.Array, collections: dict,
                    parts: StepParts) -> tuple[Any, dict]:
    """Applies `grads` with `parts.tx`; returns (new state, step metrics).

    The non-finite guard: when `loss` or the gradient holds a NaN or Inf, params, optimizer
    state, collections and EMA stay as they were and only `step` advances. The EMA (when
    the state has one) becomes decay * ema + (1 - decay) * new params. Metrics: `loss`,
    `grad_norm`, `param_norm`, `lr` and `nonfinite` (1.0 for a skipped update).
    """
    updates, opt_state = parts.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if ema is not None:
        decay = parts.ema_decay
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    params, opt_state, collections, ema = jax.tree.map(
        lambda new, old: jnp.where(finite, new, old),
        (params, opt_state, collections, ema),
        (state.params, state.opt_state, state.collections, state.ema_params))
    metrics = {
        "loss": loss,
        "grad_norm": grad_norm,
        "param_norm": optax.tree.norm(params),
        "lr": parts.schedule(state.step),
        "nonfinite": 1.0 - finite.astype(jnp.float32),
    }
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              collections=collections, ema_params=ema)
    return new_state, metrics


def make_train_step(parts: StepParts, objective: Objective | None = None) -> StepFn:
    """Returns train_step(state, batch) -> (new state, metrics dict of scalars).

    `objective` defaults to `model_objective(parts.model, parts.loss_fn)`. The metrics are
    those of `apply_gradients` plus the objective's own (a loss's metrics, aux losses), which
    the trainer logs as `train/<name>`.
    """
    objective = objective or model_objective(parts.model, parts.loss_fn)

    def train_step(state, batch: dict) -> tuple[Any, dict]:
        rng = state.step_key("dropout")
        loss, extra, collections, grads = value_and_grads(objective, state, batch, rng,
                                                          parts.grad_accum_steps)
        clash = sorted(set(extra) & set(STEP_METRICS))
        if clash:
            raise ValueError(f"the loss returns metric {clash[0]!r}, a name the train step "
                             f"reports itself ({', '.join(STEP_METRICS)}); rename it.")
        state, metrics = apply_gradients(state, grads, loss, collections, parts)
        return state, {**metrics, **extra}

    return train_step


@registry.TRAIN_STEPS.register("default")
def default_step(parts: StepParts) -> StepFn:
    """The shared step: the model's loss (`model_objective`), accumulation, guard, update."""
    return make_train_step(parts)
