"""LayerNorm with logically partitioned params."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any


def layer_norm(
    dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32, name: str | None = None,
    epsilon: float = 1e-6,
) -> nn.LayerNorm:
    """Returns an nn.LayerNorm (eps `epsilon`, big_vision's 1e-6 by default) whose scale and
    bias carry the logical axis 'embed'.

    Statistics are computed in float32 whatever `dtype` is; the output is in `dtype`.
    """
    return nn.LayerNorm(
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=param_dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
        name=name,
    )
