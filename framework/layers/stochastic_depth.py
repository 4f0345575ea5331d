"""Stochastic depth (drop path): drops a residual branch for whole examples."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def linear_drop_path_rate(max_rate: float, layer: int, depth: int) -> float:
    """Returns the drop-path rate of block `layer` (0-based) of `depth` blocks under the
    linear schedule: 0 for the first block, `max_rate` for the last (Scenic, DeiT)."""
    return max_rate * layer / max(depth - 1, 1)


class StochasticDepth(nn.Module):
    """Zeroes the whole input of an example with probability `rate`, rescaling the rest.

    Applied to a residual branch before it is added back, so a dropped example skips the
    block. Draws from the 'dropout' rng stream. Identity when `deterministic` or rate == 0.

    Attributes:
      rate: drop probability; may be overridden per call (e.g. by a per-layer schedule).
    """

    rate: float = 0.0

    @nn.compact
    def __call__(
        self, x: jax.Array, *, deterministic: bool, rate: float | jax.Array | None = None
    ) -> jax.Array:
        """Takes x (B, ...) and returns x of the same shape and dtype.

        `rate` overrides the attribute; it may be a traced scalar (as under nn.scan), in
        which case a mask is always drawn in training, even if its value is 0.
        """
        rate = self.rate if rate is None else rate
        if deterministic or (isinstance(rate, (int, float)) and rate == 0.0):
            return x
        keep_prob = 1.0 - rate
        mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        keep = jax.random.bernoulli(self.make_rng("dropout"), keep_prob, mask_shape)
        return jnp.where(keep, x / jnp.asarray(keep_prob, x.dtype), jnp.zeros_like(x))
