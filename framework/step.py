"""The jitted train step: loss, gradients (optionally accumulated over micro-batches), update."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from framework.train_state import TrainState

LossFn = Callable[[jax.Array, dict], jax.Array]


def weighted_mean(per_example: jax.Array, batch: dict) -> jax.Array:
    """Mean of per-example values (B,) weighted by `batch["mask"]` (B,) when present."""
    if "mask" not in batch:
        return jnp.mean(per_example)
    w = batch["mask"].astype(per_example.dtype)
    return jnp.sum(per_example * w) / jnp.maximum(jnp.sum(w), 1.0)


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


def make_train_step(
    model: nn.Module,
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    schedule: Callable[[jax.Array], jax.Array],
    grad_accum_steps: int = 1,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """Returns train_step(state, batch) -> (new state, metrics dict of scalars).

    Metrics: `loss`, `grad_norm`, `param_norm`, `lr` and `nonfinite` (1.0 when the loss or
    the gradient holds a NaN or Inf; such an update is not applied: params and optimizer
    state stay as they were and only `step` advances). With `grad_accum_steps` > 1 the batch
    is split into that many micro-batches whose gradients are averaged, which gives the
    full-batch gradient with less activation memory.
    """

    def loss_and_grads(params, batch, rng):
        def objective(p):
            outputs = model.apply({"params": p}, batch, train=True, rngs={"dropout": rng})
            return weighted_mean(loss_fn(outputs, batch), batch)

        return jax.value_and_grad(objective)(params)

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        rng = state.step_key("dropout")
        if grad_accum_steps == 1:
            loss, grads = loss_and_grads(state.params, batch, rng)
        else:
            micro = split_micro_batches(batch, grad_accum_steps)

            def accumulate(carry, xs):
                index, one = xs
                loss_i, grads_i = loss_and_grads(state.params, one, jax.random.fold_in(rng, index))
                return jax.tree.map(jnp.add, carry, (loss_i, grads_i)), None

            zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params))
            (loss, grads), _ = jax.lax.scan(
                accumulate, zeros, (jnp.arange(grad_accum_steps), micro))
            loss, grads = jax.tree.map(lambda x: x / grad_accum_steps, (loss, grads))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        params, opt_state = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old),
            (params, opt_state), (state.params, state.opt_state))
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "param_norm": optax.tree.norm(params),
            "lr": schedule(state.step),
            "nonfinite": 1.0 - finite.astype(jnp.float32),
        }
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step
