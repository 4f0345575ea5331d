"""Space-time factorised attention for video tokens (ViViT models 3 and 4).

Video tokens are laid out time-major: a clip of `num_frames` frames with `S` tokens each is
the sequence (B, num_frames * S, D), frame 0's tokens first.

- `factorized_dot_product_attention`: an attention core (for MultiHeadDotProductAttention's
  `attention_fn`) whose first half of the heads attend over time (tokens at the same spatial
  position) and second half over space (tokens of the same frame); the head order is
  Scenic's, so its checkpoints of ViViT model 4 keep their meaning.
- `FactorizedSelfAttentionBlock` / `FactorizedSelfAttentionEncoder`: a block with a spatial
  and a temporal self-attention, each with its own LayerNorm, then the MLP (ViViT model 3;
  parameter names as Scenic's `EncoderFactorizedSelfAttentionBlock`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework.layers.attention import MultiHeadDotProductAttention
from framework.layers.encoder import ACTIVATION_AXES, remat_policy
from framework.layers.mlp import MlpBlock
from framework.layers.normalization import layer_norm
from framework.layers.stochastic_depth import StochasticDepth, linear_drop_path_rate

Dtype = Any

ATTENTION_ORDERS = ("space_time", "time_space")


def split_frames(x: jax.Array, num_frames: int) -> jax.Array:
    """Returns time-major tokens (B, T * S, ...) as (B, T, S, ...); raises if T does not divide."""
    batch, length = x.shape[:2]
    if length % num_frames:
        raise ValueError(
            f"{length} tokens cannot be split into num_frames={num_frames} equal frames; "
            "factorised attention needs every frame to have the same number of tokens "
            "(no class token: use pool_type 'gap')."
        )
    return jnp.reshape(x, (batch, num_frames, length // num_frames) + x.shape[2:])


def factorized_dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | None = None,
    *,
    num_frames: int,
    implementation: str | None = None,
) -> jax.Array:
    """Dot-product attention with heads split between time and space.

    Takes query, key, value (B, T * S, H, Dh) (time-major tokens, T = num_frames, H even)
    and returns (B, T * S, H, Dh). Heads [0, H/2) attend over the T tokens at the same
    spatial position, heads [H/2, H) over the S tokens of the same frame. Cost: the
    attention part is T + S per token instead of T * S. `mask` is not supported.
    """
    if mask is not None:
        raise ValueError("factorized_dot_product_attention takes no mask.")
    heads = query.shape[2]
    if heads % 2:
        raise ValueError(f"factorised dot-product attention needs an even num_heads, got {heads}.")
    q, k, v = (split_frames(a, num_frames) for a in (query, key, value))  # (B, T, S, H, Dh)
    batch, frames, space, _, head_dim = q.shape
    half = heads // 2

    def attend(q, k, v):
        return jax.nn.dot_product_attention(q, k, v, implementation=implementation)

    def over_time(a):  # (B, T, S, H/2, Dh) -> (B * S, T, H/2, Dh)
        return jnp.reshape(jnp.swapaxes(a, 1, 2), (batch * space, frames, half, head_dim))

    temporal = attend(*(over_time(a[..., :half, :]) for a in (q, k, v)))
    temporal = jnp.swapaxes(jnp.reshape(temporal, (batch, space, frames, half, head_dim)), 1, 2)

    def over_space(a):  # (B, T, S, H/2, Dh) -> (B * T, S, H/2, Dh)
        return jnp.reshape(a, (batch * frames, space, half, head_dim))

    spatial = attend(*(over_space(a[..., half:, :]) for a in (q, k, v)))
    spatial = jnp.reshape(spatial, (batch, frames, space, half, head_dim))
    out = jnp.concatenate([temporal, spatial], axis=3)
    return jnp.reshape(out, (batch, frames * space, heads, head_dim))


class FactorizedSelfAttentionBlock(nn.Module):
    """Pre-LN block: spatial self-attention, temporal self-attention, then the MLP.

    Takes time-major tokens (B, T * S, D). Submodules (Scenic's names): `LayerNorm_space`,
    `MultiHeadDotProductAttention_space`, `LayerNorm_time`,
    `MultiHeadDotProductAttention_time`, `LayerNorm_mlp`, `MlpBlock`. Each of the three
    residual branches has dropout and stochastic depth.

    Attributes:
      num_frames: T, the number of frames (temporal tokens).
      mlp_dim, num_heads, dropout_rate, attention_dropout_rate, drop_path_rate, dtype,
        param_dtype, attention_implementation: as in EncoderBlock.
      attention_order: 'space_time' (the paper's order) or 'time_space'.
    """

    num_frames: int
    mlp_dim: int | None
    num_heads: int
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    drop_path_rate: float = 0.0
    attention_order: str = "space_time"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        """Takes x (B, T * S, D); returns (B, T * S, D) in `dtype`."""
        if self.attention_order not in ATTENTION_ORDERS:
            raise ValueError(
                f"attention_order={self.attention_order!r} is unknown; use one of "
                f"{ATTENTION_ORDERS}."
            )
        drop_path = StochasticDepth(self.drop_path_rate)
        batch, length, width = x.shape
        frames = self.num_frames
        space = split_frames(x, frames).shape[2]

        def to_axis(tokens, axis):  # (B, T*S, D) -> sequences along `axis`
            grid = jnp.reshape(tokens, (batch, frames, space, width))
            if axis == "time":
                return jnp.reshape(jnp.swapaxes(grid, 1, 2), (batch * space, frames, width))
            return jnp.reshape(grid, (batch * frames, space, width))

        def from_axis(seqs, axis):
            if axis == "time":
                grid = jnp.swapaxes(jnp.reshape(seqs, (batch, space, frames, width)), 1, 2)
                return jnp.reshape(grid, (batch, length, width))
            return jnp.reshape(seqs, (batch, length, width))

        x = nn.with_logical_constraint(x, ACTIVATION_AXES)
        for axis in self.attention_order.split("_"):
            y = to_axis(x, axis)
            y = layer_norm(self.dtype, self.param_dtype, name=f"LayerNorm_{axis}")(y)
            y = MultiHeadDotProductAttention(
                num_heads=self.num_heads,
                dropout_rate=self.attention_dropout_rate,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                attention_implementation=self.attention_implementation,
                name=f"MultiHeadDotProductAttention_{axis}",
            )(y, y, deterministic=deterministic)
            y = nn.Dropout(rate=self.dropout_rate)(y, deterministic=deterministic)
            x = x + drop_path(from_axis(y, axis), deterministic=deterministic)
            x = nn.with_logical_constraint(x, ACTIVATION_AXES)

        y = layer_norm(self.dtype, self.param_dtype, name="LayerNorm_mlp")(x)
        y = MlpBlock(
            mlp_dim=self.mlp_dim,
            dropout_rate=self.dropout_rate,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="MlpBlock",
        )(y, deterministic=deterministic)
        y = nn.Dropout(rate=self.dropout_rate)(y, deterministic=deterministic)
        x = x + drop_path(y, deterministic=deterministic)
        return nn.with_logical_constraint(x, ACTIVATION_AXES)


class _PositionalFactorizedBlock(FactorizedSelfAttentionBlock):
    """FactorizedSelfAttentionBlock with `deterministic` positional (static for nn.remat)."""

    def __call__(self, x, deterministic):
        """Takes x (B, T * S, D) and a bool; returns (B, T * S, D)."""
        return super().__call__(x, deterministic=deterministic)


class FactorizedSelfAttentionEncoder(nn.Module):
    """`depth` FactorizedSelfAttentionBlocks (`encoderblock_{i}`) and `encoder_norm`.

    Stochastic depth grows linearly from 0 (first block) to `stochastic_depth` (last), as in
    framework.layers.Encoder.

    Attributes:
      num_frames, attention_order: see FactorizedSelfAttentionBlock.
      depth, mlp_dim, num_heads, dropout_rate, attention_dropout_rate, stochastic_depth,
        remat, remat_policy, dtype, param_dtype, attention_implementation: as in Encoder.
    """

    num_frames: int
    depth: int
    mlp_dim: int | None
    num_heads: int
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    stochastic_depth: float = 0.0
    attention_order: str = "space_time"
    remat: bool = False
    remat_policy: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        """Takes time-major tokens x (B, T * S, D); returns the normalised (B, T * S, D)."""
        block_cls = _PositionalFactorizedBlock
        if self.remat:
            block_cls = nn.remat(block_cls, static_argnums=(2,),
                                 policy=remat_policy(self.remat_policy))
        for i in range(self.depth):
            x = block_cls(
                num_frames=self.num_frames,
                mlp_dim=self.mlp_dim,
                num_heads=self.num_heads,
                dropout_rate=self.dropout_rate,
                attention_dropout_rate=self.attention_dropout_rate,
                drop_path_rate=linear_drop_path_rate(self.stochastic_depth, i, self.depth),
                attention_order=self.attention_order,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                attention_implementation=self.attention_implementation,
                name=f"encoderblock_{i}",
            )(x, deterministic)
        return layer_norm(self.dtype, self.param_dtype, name="encoder_norm")(x)
