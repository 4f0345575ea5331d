"""A dense layer over several input and output axes, with logical axis names on its params."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def flat_init(init: Any, num_in: int) -> Any:
    """Wraps `init` so fans are computed on the kernel flattened to (prod(in), prod(out))."""

    def wrapped(key, shape, dtype=jnp.float32):
        flat = (math.prod(shape[:num_in]), math.prod(shape[num_in:]))
        return init(key, flat, dtype).reshape(shape)

    return wrapped


class LinearGeneral(nn.Module):
    """y = x . kernel + bias, contracting the last `num_in` axes of x.

    Same params as flax's DenseGeneral (`kernel` (*in, *features), `bias` (*features)) and the
    same initialisation, but the kernel is created in its final shape, so its logical axis
    names (`kernel_axes`, `bias_axes`) apply without a reshape.
    """

    features: Sequence[int]
    num_in: int = 1
    kernel_axes: Sequence[str | None] = ()
    bias_axes: Sequence[str | None] = ()
    use_bias: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Takes x (..., *in) and returns (..., *features) in `dtype`."""
        features = tuple(self.features)
        in_shape = x.shape[x.ndim - self.num_in:]
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(flat_init(self.kernel_init, self.num_in),
                                         tuple(self.kernel_axes)),
            in_shape + features, self.param_dtype)
        x, kernel = x.astype(self.dtype), jnp.asarray(kernel, self.dtype)
        contract = (tuple(range(x.ndim - self.num_in, x.ndim)), tuple(range(self.num_in)))
        y = jax.lax.dot_general(x, kernel, (contract, ((), ())))
        if self.use_bias:
            bias = self.param("bias", nn.with_logical_partitioning(self.bias_init,
                                                                   tuple(self.bias_axes)),
                              features, self.param_dtype)
            y = y + jnp.asarray(bias, self.dtype)
        return y
