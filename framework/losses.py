"""Classification losses, registered by name.

A registered loss factory takes its config keys and returns `loss(outputs, batch)`, which
returns the per-example loss (B,); the trainer weights it by `batch["mask"]` when present
and averages.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from framework import registry

LossFn = Callable[[jax.Array, dict], jax.Array]


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

    def loss(logits: jax.Array, batch: dict) -> jax.Array:
        targets = as_targets(batch[label_key], logits.shape[-1])
        return softmax_cross_entropy(logits, smooth(targets, label_smoothing))

    return loss


@registry.LOSSES.register("sigmoid_xent")
def sigmoid_xent(label_smoothing: float = 0.0, label_key: str = "label") -> LossFn:
    """Multi-label sigmoid cross-entropy, summed over classes (as big_vision's `sigmoid_xent`).

    `batch[label_key]` is multi-hot (B, C) or int (B,) (turned into one-hot).
    """

    def loss(logits: jax.Array, batch: dict) -> jax.Array:
        targets = as_targets(batch[label_key], logits.shape[-1])
        return sigmoid_cross_entropy(logits, smooth(targets, label_smoothing))

    return loss
