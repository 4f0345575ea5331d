"""Classification losses, registered by name.

A registered loss factory takes its config keys and returns `loss(outputs, batch) ->
(scalar loss, {name: scalar metric})`; the train step minimises the scalar and logs each
metric as `train/<name>`. `outputs` is what the model returns: an array of logits, or a dict
(see `logits_of`). Losses average over examples with `masked_mean`, which leaves out the
padding examples a batch marks with `batch["mask"]`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from framework import registry

LossFn = Callable[[Any, dict], tuple[jax.Array, dict]]


def masked_mean(values: jax.Array, batch: dict) -> jax.Array:
    """Mean of per-example values (B,) weighted by `batch["mask"]` (B,) when present (padding
    examples have mask 0); returns a float scalar."""
    if "mask" not in batch:
        return jnp.mean(values)
    w = batch["mask"].astype(values.dtype)
    return jnp.sum(values * w) / jnp.maximum(jnp.sum(w), 1.0)


def logits_of(outputs: Any) -> jax.Array:
    """Returns the logits (B, C) of a model's outputs: the array itself, or `outputs["logits"]`
    when the model returns a dict (logits plus auxiliary outputs)."""
    if isinstance(outputs, dict):
        if "logits" not in outputs:
            raise ValueError("the model returns a dict without 'logits' "
                             f"(keys: {', '.join(sorted(outputs))}); a classification loss or "
                             "evaluator needs its logits under 'logits'.")
        return outputs["logits"]
    return outputs


def as_targets(labels: jax.Array, num_classes: int) -> jax.Array:
    """Returns float targets (B, C) from int labels (B,) or from targets already (B, C)."""
    if labels.ndim == 1:
        return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return labels.astype(jnp.float32)


def smooth(targets: jax.Array, label_smoothing: float) -> jax.Array:
    """Mixes targets (B, C) with the uniform distribution: (1 - s) * t + s / C."""
    if not label_smoothing:
        return targets
    return targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[-1]


def softmax_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy of logits (B, C) against targets (B, C) -> (B,)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.sum(targets * logp, axis=-1)


def sigmoid_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-example sum over classes of binary cross-entropy, logits/targets (B, C) -> (B,)."""
    logits = logits.astype(jnp.float32)
    losses = jax.nn.softplus(logits) - logits * targets
    return jnp.sum(losses, axis=-1)


@registry.LOSSES.register("softmax_xent")
def softmax_xent(label_smoothing: float = 0.0, label_key: str = "label") -> LossFn:
    """Softmax cross-entropy on `batch[label_key]` (int (B,) or soft (B, C) targets).

    `label_smoothing` s replaces the targets by (1 - s) * t + s / C.
    """

    def loss(outputs: Any, batch: dict) -> tuple[jax.Array, dict]:
        logits = logits_of(outputs)
        targets = as_targets(batch[label_key], logits.shape[-1])
        return masked_mean(softmax_cross_entropy(logits, smooth(targets, label_smoothing)),
                           batch), {}

    return loss


@registry.LOSSES.register("sigmoid_xent")
def sigmoid_xent(label_smoothing: float = 0.0, label_key: str = "label") -> LossFn:
    """Multi-label sigmoid cross-entropy, summed over classes (as big_vision's `sigmoid_xent`).

    `batch[label_key]` is multi-hot (B, C) or int (B,) (turned into one-hot).
    """

    def loss(outputs: Any, batch: dict) -> tuple[jax.Array, dict]:
        logits = logits_of(outputs)
        targets = as_targets(batch[label_key], logits.shape[-1])
        return masked_mean(sigmoid_cross_entropy(logits, smooth(targets, label_smoothing)),
                           batch), {}

    return loss
