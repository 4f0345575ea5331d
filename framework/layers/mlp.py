"""Transformer MLP block with big_vision parameter names."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
# The MLP's activation by name: big_vision's (and flax's default) tanh approximation of GELU,
# or the exact erf form (timm, Hugging Face ViT checkpoints).
ACTIVATIONS = ("gelu_tanh", "gelu_exact")


class MlpBlock(nn.Module):
    """Dense (`Dense_0`, D -> mlp_dim) -> gelu -> dropout -> Dense (`Dense_1`, -> D).

    Attributes:
      mlp_dim: hidden width; None means 4 * D.
      out_dim: output width; None means the input width D.
      dropout_rate: dropout after the activation (training only).
      activation: one of ACTIVATIONS ('gelu_tanh' default, 'gelu_exact').
      dtype: compute dtype; params are stored in `param_dtype`.
    """

    mlp_dim: int | None = None
    out_dim: int | None = None
    dropout_rate: float = 0.0
    activation: str = "gelu_tanh"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        """Takes x (..., D) and returns (..., out_dim or D) in `dtype`."""
        width = x.shape[-1]
        mlp_dim = self.mlp_dim or 4 * width
        kernel_init = nn.initializers.xavier_uniform()
        bias_init = nn.initializers.normal(stddev=1e-6)
        x = nn.Dense(
            mlp_dim,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(kernel_init, ("embed", "mlp")),
            bias_init=nn.with_logical_partitioning(bias_init, ("mlp",)),
            name="Dense_0",
        )(x)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"mlp activation={self.activation!r}; use one of {ACTIVATIONS}.")
        x = nn.gelu(x, approximate=self.activation == "gelu_tanh")
        x = nn.Dropout(rate=self.dropout_rate)(x, deterministic=deterministic)
        return nn.Dense(
            self.out_dim or width,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(kernel_init, ("mlp", "embed")),
            bias_init=nn.with_logical_partitioning(bias_init, ("embed",)),
            name="Dense_1",
        )(x)
