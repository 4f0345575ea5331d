"""Pooling of token sequences: class token, global average, attention (MAP)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework.layers.attention import MultiHeadDotProductAttention
from framework.layers.mlp import MlpBlock
from framework.layers.normalization import layer_norm

Dtype = Any

POOL_TYPES = ("token", "gap", "map", "none")


def pool_tokens(x: jax.Array, pool_type: str) -> jax.Array:
    """Pools tokens x (B, L, D) without params.

    'token' / 'first': the first token (B, D); 'last': the last token (B, D); 'gap': the
    mean over tokens (B, D); 'max': the maximum over tokens (B, D); 'none': x unchanged
    (B, L, D). 'map' needs params: use MAPHead.
    """
    if pool_type in ("token", "first"):
        return x[:, 0]
    if pool_type == "last":
        return x[:, -1]
    if pool_type == "gap":
        return jnp.mean(x, axis=1)
    if pool_type == "max":
        return jnp.max(x, axis=1)
    if pool_type == "none":
        return x
    raise ValueError(
        f"pool_type={pool_type!r} cannot be pooled by pool_tokens; use one of "
        f"'token', 'first', 'last', 'gap', 'max', 'none' here, or MAPHead for 'map'."
    )


class MAPHead(nn.Module):
    """Multihead attention pooling: a learned `probe` query attends over the tokens.

    Params (big_vision names): `probe` (1, 1, D), `MultiHeadDotProductAttention_0`,
    `LayerNorm_0`, `MlpBlock_0`. Output = attn + MLP(LN(attn)) for the single probe.

    Attributes:
      num_heads: attention heads.
      mlp_dim: MLP hidden width (None -> 4 * D).
      dtype / param_dtype / attention_implementation: as in MultiHeadDotProductAttention.
      mlp_activation: the MLP's (framework.layers.mlp.ACTIVATIONS); layer_norm_eps: its
        LayerNorm's epsilon.
    """

    num_heads: int
    mlp_dim: int | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None
    mlp_activation: str = "gelu_tanh"
    layer_norm_eps: float = 1e-6

    @nn.compact
    def __call__(
        self, x: jax.Array, mask: jax.Array | None = None, *, deterministic: bool = True
    ) -> jax.Array:
        """Takes tokens x (B, L, D) and an optional boolean key mask broadcastable to
        (B, H, 1, L); returns the pooled (B, D) in `dtype`."""
        batch, _, width = x.shape
        probe = self.param(
            "probe",
            nn.with_logical_partitioning(nn.initializers.xavier_uniform(), (None, None, "embed")),
            (1, 1, width),
            self.param_dtype,
        )
        probe = jnp.broadcast_to(probe.astype(self.dtype), (batch, 1, width))
        x = MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            attention_implementation=self.attention_implementation,
        )(probe, x, mask, deterministic=deterministic)
        y = layer_norm(self.dtype, self.param_dtype, epsilon=self.layer_norm_eps)(x)
        x = x + MlpBlock(mlp_dim=self.mlp_dim, activation=self.mlp_activation, dtype=self.dtype,
                         param_dtype=self.param_dtype)(
            y, deterministic=deterministic
        )
        return x[:, 0]
