"""Pre-LN cross-attention residual block: tokens of one sequence attend to another's."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework.layers.attention import MultiHeadDotProductAttention
from framework.layers.normalization import layer_norm
from framework.layers.stochastic_depth import StochasticDepth

Dtype = Any


class CrossAttentionBlock(nn.Module):
    """x + Attn(LN(x), LN(context)): queries from x (B, Lq, Dq), keys and values from
    context (B, Lk, Dk), which may have another length and width.

    Submodules `LayerNorm_0` (queries, width Dq), `LayerNorm_1` (context, width Dk) and
    `MultiHeadDotProductAttention_0` (q/k/v width `qkv_features`, Dq by default, so its key
    and value kernels are (Dk, H, Dq / H) and project the context into the query's width;
    its output is projected back to Dq either way). With `zero_init_out`
    the `out` kernel starts at zero, so the block starts as the identity and a pretrained
    stream is undisturbed at initialisation (MTV's cross-view attention). Dropout follows
    the branch; stochastic depth drops it per example (rng stream 'dropout').

    Attributes:
      num_heads: attention heads (must divide the q/k/v width).
      qkv_features: q/k/v width; None = the query's width Dq.
      dropout_rate: dropout on the branch output.
      attention_dropout_rate: dropout on the attention weights.
      drop_path_rate: stochastic depth rate of the branch.
      zero_init_out: zero-initialise the attention's output projection.
      dtype / param_dtype / attention_implementation: as in MultiHeadDotProductAttention.
    """

    num_heads: int
    qkv_features: int | None = None
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    drop_path_rate: float = 0.0
    zero_init_out: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None

    @nn.compact
    def __call__(
        self, x: jax.Array, context: jax.Array, mask: jax.Array | None = None, *,
        deterministic: bool,
    ) -> jax.Array:
        """Takes x (B, Lq, Dq), context (B, Lk, Dk) and an optional boolean mask
        broadcastable to (B, H, Lq, Lk) (True = attend); returns (B, Lq, Dq) in `dtype`."""
        query = layer_norm(self.dtype, self.param_dtype)(x)
        keys = layer_norm(self.dtype, self.param_dtype)(context)
        y = MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            qkv_features=self.qkv_features or x.shape[-1],
            out_features=x.shape[-1],
            dropout_rate=self.attention_dropout_rate,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            attention_implementation=self.attention_implementation,
            out_kernel_init=nn.initializers.zeros if self.zero_init_out else None,
        )(query, keys, mask, deterministic=deterministic)
        y = nn.Dropout(rate=self.dropout_rate)(y, deterministic=deterministic)
        return x + StochasticDepth(self.drop_path_rate)(y, deterministic=deterministic)
