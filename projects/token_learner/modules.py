"""TokenLearner (v1.0 and v1.1) and TokenFuser modules (Ryoo et al., NeurIPS 2021).

A TokenLearner turns a group of L tokens (one frame's, or one image's, h x w patch tokens)
into S learned tokens: it computes S spatial attention maps over the L positions and pools
the tokens with each map. Parameter names follow Scenic's projects/token_learner so its
checkpoints map one to one.

Every module sows its attention maps (N, S, L) into the 'intermediates' collection under
`attention_maps` (read them with `apply(..., mutable=['intermediates'])`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework.layers import MlpBlock, layer_norm

Dtype = Any


def _check_tokens(x: jax.Array, grid_shape: Sequence[int] | None) -> None:
    if x.ndim != 3:
        raise ValueError(f"TokenLearner takes tokens (N, L, D); got shape {x.shape}.")
    if grid_shape is not None and x.shape[1] != math.prod(grid_shape):
        raise ValueError(f"TokenLearner: {x.shape[1]} tokens do not fill the grid "
                         f"{tuple(grid_shape)}.")


class TokenLearnerV10(nn.Module):
    """TokenLearner v1.0: convolutional attention maps, sigmoid, (sum) pooling.

    Maps: LayerNorm, then three 3x3 convolutions with S channels and gelu, then a fourth 3x3
    convolution with S channels, over the (h, w) grid; a sigmoid per position and map.
    Token s = sum (or mean) over positions of map_s * x.
    Params (Scenic names): `LayerNorm_0`, `Conv_0` ... `Conv_3` (kernel (3, 3, D_in, S)).

    Attributes:
      num_tokens: S.
      use_sum_pooling: sum over positions (Scenic's default) or mean.
      dtype / param_dtype: compute and storage dtypes.
    """

    num_tokens: int
    use_sum_pooling: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, grid_shape: Sequence[int], *,
                 deterministic: bool = True) -> jax.Array:
        """Takes tokens x (N, h*w, D) and grid_shape (h, w); returns (N, S, D) in `dtype`."""
        del deterministic  # No dropout in v1.0.
        if grid_shape is None or len(grid_shape) != 2:
            raise ValueError(
                "TokenLearner v1.0 convolves over a 2D grid: give grid_shape (h, w) "
                "(model.tokens_per='clip' needs tokenlearner_version='1.1').")
        _check_tokens(x, grid_shape)
        n, length, _ = x.shape
        maps = layer_norm(self.dtype, self.param_dtype)(x).reshape(n, *grid_shape, -1)
        for i in range(4):
            maps = nn.Conv(
                self.num_tokens, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=nn.with_logical_partitioning(
                    nn.initializers.lecun_normal(), (None, None, "embed", None)),
                name=f"Conv_{i}")(maps)
            if i < 3:
                maps = nn.gelu(maps)
        maps = nn.sigmoid(maps.reshape(n, length, self.num_tokens).transpose(0, 2, 1))
        self.sow("intermediates", "attention_maps", maps)
        tokens = jnp.einsum("nsl,nld->nsd", maps, x.astype(self.dtype))
        return tokens if self.use_sum_pooling else tokens / length


class TokenLearnerV11(nn.Module):
    """TokenLearner v1.1: MLP attention maps with a softmax over positions.

    Maps: LayerNorm, then an MLP (D -> bottleneck_dim -> S, gelu) per position; a softmax
    over the L positions of each map. Token s = sum over positions of map_s * x.
    Params (Scenic names): `LayerNorm_0`, `token_masking` (MlpBlock `Dense_0`, `Dense_1`).

    Attributes:
      num_tokens: S.
      bottleneck_dim: hidden width of the map MLP (Scenic: 64).
      dropout_rate: dropout inside the map MLP (training only).
      dtype / param_dtype: compute and storage dtypes.
    """

    num_tokens: int
    bottleneck_dim: int = 64
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, grid_shape: Sequence[int] | None = None, *,
                 deterministic: bool = True) -> jax.Array:
        """Takes tokens x (N, L, D) (grid_shape only checks L); returns (N, S, D)."""
        _check_tokens(x, grid_shape)
        logits = layer_norm(self.dtype, self.param_dtype)(x)
        logits = MlpBlock(mlp_dim=self.bottleneck_dim, out_dim=self.num_tokens,
                          dropout_rate=self.dropout_rate, dtype=self.dtype,
                          param_dtype=self.param_dtype, name="token_masking")(
                              logits, deterministic=deterministic)
        # Softmax over positions in float32 (L can be thousands of positions).
        maps = jax.nn.softmax(logits.astype(jnp.float32).transpose(0, 2, 1), axis=-1)
        self.sow("intermediates", "attention_maps", maps)
        return jnp.einsum("nsl,nld->nsd", maps.astype(self.dtype), x.astype(self.dtype))


TOKEN_LEARNERS = {"1.0": TokenLearnerV10, "1.1": TokenLearnerV11}


class TokenFuser(nn.Module):
    """TokenFuser: mixes the S processed tokens and maps them back onto the L positions.

    Mixing: (LayerNorm `fuser_mix_norm1`), a Dense over the token axis (`Dense_0`, S -> S,
    zero-initialised), (LayerNorm `fuser_mix_norm2`). Remapping: each original position l
    gets sum_s sigmoid(MLP(LN(original_l)))_s * token_s, with the MLP `token_masking`
    (D -> bottleneck_dim -> S) over `LayerNorm_0`(original). The caller adds the residual.

    Attributes:
      use_normalization: the two mixing LayerNorms (needed with v1.0's sum pooling).
      bottleneck_dim: hidden width of the remapping MLP.
      dropout_rate: dropout on the output and inside the MLP (training only).
      dtype / param_dtype: compute and storage dtypes.
    """

    use_normalization: bool = True
    bottleneck_dim: int = 64
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens: jax.Array, original: jax.Array, *,
                 deterministic: bool = True) -> jax.Array:
        """Takes tokens (N, S, D) and the original tokens (N, L, D) the TokenLearner pooled;
        returns (N, L, D) in `dtype` (without the residual)."""
        num_tokens = tokens.shape[1]
        if self.use_normalization:
            tokens = layer_norm(self.dtype, self.param_dtype, name="fuser_mix_norm1")(tokens)
        tokens = nn.Dense(
            num_tokens, dtype=self.dtype, param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(nn.initializers.zeros, (None, None)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (None,)),
            name="Dense_0")(tokens.transpose(0, 2, 1)).transpose(0, 2, 1)
        if self.use_normalization:
            tokens = layer_norm(self.dtype, self.param_dtype, name="fuser_mix_norm2")(tokens)
        mix = layer_norm(self.dtype, self.param_dtype, name="LayerNorm_0")(original)
        mix = MlpBlock(mlp_dim=self.bottleneck_dim, out_dim=num_tokens,
                       dropout_rate=self.dropout_rate, dtype=self.dtype,
                       param_dtype=self.param_dtype, name="token_masking")(
                           mix, deterministic=deterministic)
        mix = nn.sigmoid(mix)  # (N, L, S)
        out = jnp.einsum("nsd,nls->nld", tokens, mix)
        return nn.Dropout(rate=self.dropout_rate)(out, deterministic=deterministic)
