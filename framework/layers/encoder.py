"""Pre-LN transformer encoder block and encoder stack (optionally rematted / scanned)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework.layers.attention import MultiHeadDotProductAttention
from framework.layers.mlp import MlpBlock
from framework.layers.normalization import layer_norm
from framework.layers.stochastic_depth import StochasticDepth, linear_drop_path_rate

Dtype = Any

ACTIVATION_AXES = ("batch", "seq", "act_embed")

# Policies accepted by `Encoder.remat_policy`; None means jax's default (save nothing).
REMAT_POLICIES = (
    "nothing_saveable",
    "everything_saveable",
    "dots_saveable",
    "dots_with_no_batch_dims_saveable",
    "checkpoint_dots",
    "checkpoint_dots_with_no_batch_dims",
)


def remat_policy(name: str | None):
    """Returns the `jax.checkpoint_policies` policy called `name` (None -> None).

    Raises ValueError listing the accepted names for an unknown one.
    """
    if name is None:
        return None
    if name not in REMAT_POLICIES:
        raise ValueError(f"remat_policy={name!r} is unknown; use None or one of {REMAT_POLICIES}.")
    return getattr(jax.checkpoint_policies, name)


class EncoderBlock(nn.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + Mlp(LN(x)).

    Submodules `LayerNorm_0`, `MultiHeadDotProductAttention_0`, `LayerNorm_1`, `MlpBlock_0`
    (big_vision names). Dropout follows each branch; stochastic depth drops each branch for
    whole examples (rng stream 'dropout').

    Attributes:
      mlp_dim: MLP hidden width (None -> 4 * D).
      num_heads: attention heads.
      dropout_rate: dropout on branch outputs and inside the MLP.
      attention_dropout_rate: dropout on attention weights (see MultiHeadDotProductAttention).
      drop_path_rate: stochastic depth rate; a per-call `drop_path_rate` overrides it.
      dtype / param_dtype: compute and storage dtypes.
      attention_implementation: the attention core (see MultiHeadDotProductAttention).
      attention_fn: optional attention core (see MultiHeadDotProductAttention).
      mlp_activation: the MLP's, one of framework.layers.mlp.ACTIVATIONS.
      layer_norm_eps: the LayerNorms' epsilon.
    """

    mlp_dim: int | None
    num_heads: int
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    drop_path_rate: float = 0.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None
    attention_fn: Any = None
    mlp_activation: str = "gelu_tanh"
    layer_norm_eps: float = 1e-6

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array | None = None,
        *,
        deterministic: bool,
        drop_path_rate: float | jax.Array | None = None,
    ) -> jax.Array:
        """Takes x (B, L, D) and an optional boolean attention mask broadcastable to
        (B, H, L, L) (True = attend); returns (B, L, D) in `dtype`."""
        drop_path = StochasticDepth(self.drop_path_rate)
        rate = drop_path_rate  # None -> the module's own rate.
        x = nn.with_logical_constraint(x, ACTIVATION_AXES)

        y = layer_norm(self.dtype, self.param_dtype, epsilon=self.layer_norm_eps)(x)
        y = MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            dropout_rate=self.attention_dropout_rate,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            attention_implementation=self.attention_implementation,
            attention_fn=self.attention_fn,
        )(y, y, mask, deterministic=deterministic)
        y = nn.Dropout(rate=self.dropout_rate)(y, deterministic=deterministic)
        x = x + drop_path(y, deterministic=deterministic, rate=rate)
        x = nn.with_logical_constraint(x, ACTIVATION_AXES)

        y = layer_norm(self.dtype, self.param_dtype, epsilon=self.layer_norm_eps)(x)
        y = MlpBlock(
            mlp_dim=self.mlp_dim,
            dropout_rate=self.dropout_rate,
            activation=self.mlp_activation,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )(y, deterministic=deterministic)
        y = nn.Dropout(rate=self.dropout_rate)(y, deterministic=deterministic)
        x = x + drop_path(y, deterministic=deterministic, rate=rate)
        return nn.with_logical_constraint(x, ACTIVATION_AXES)


class _PositionalBlock(EncoderBlock):
    """EncoderBlock with all-positional arguments and a (carry, output) result.

    nn.remat needs `deterministic` positional to mark it static, and nn.scan needs the
    (carry, y) return. Subclassing keeps the parameter tree identical to EncoderBlock's.
    """

    def __call__(self, x, drop_path_rate, mask, deterministic):
        """Takes x (B, L, D), a rate (or None), a mask (or None), a bool; returns (x, None)."""
        y = super().__call__(x, mask, deterministic=deterministic, drop_path_rate=drop_path_rate)
        return y, None


def block_class(remat: bool = False, policy: str | None = None, prevent_cse: bool = True):
    """Returns the EncoderBlock class to call as `block(x, drop_path_rate, mask,
    deterministic)` -> (x, None), wrapped in nn.remat when `remat` (activations recomputed in
    the backward pass; `policy` a REMAT_POLICIES name or None). The parameter tree is
    EncoderBlock's either way. `prevent_cse=False` is for blocks inside nn.scan."""
    if not remat:
        return _PositionalBlock
    # Argument 4 (counting self as 0) is `deterministic`.
    return nn.remat(_PositionalBlock, prevent_cse=prevent_cse, static_argnums=(4,),
                    policy=remat_policy(policy))


class Encoder(nn.Module):
    """A stack of `depth` EncoderBlocks followed by a LayerNorm (`encoder_norm`).

    Blocks are named `encoderblock_{i}`; with `scan=True` a single `encoderblock` holds every
    layer's params stacked on a leading axis of size `depth` (logical axis 'layers').

    Stochastic depth: with schedule 'linear' block i drops with rate
    `stochastic_depth * i / (depth - 1)` (0 for the first block, the full rate for the
    last, as in Scenic and DeiT); with 'constant' every block uses `stochastic_depth`.

    Attributes:
      depth, mlp_dim, num_heads: stack shape.
      dropout_rate, attention_dropout_rate: see EncoderBlock.
      stochastic_depth: the largest drop-path rate; stochastic_depth_schedule: see above.
      remat: wrap each block in nn.remat; remat_policy: a name from REMAT_POLICIES or None.
      scan: nn.scan over layers (faster compiles for deep stacks).
      dtype / param_dtype / attention_implementation / attention_fn / mlp_activation /
        layer_norm_eps: passed to every block (the last also to encoder_norm).
    """

    depth: int
    mlp_dim: int | None
    num_heads: int
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    stochastic_depth: float = 0.0
    stochastic_depth_schedule: str = "linear"
    remat: bool = False
    remat_policy: str | None = None
    scan: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None
    attention_fn: Any = None
    mlp_activation: str = "gelu_tanh"
    layer_norm_eps: float = 1e-6

    @nn.compact
    def __call__(
        self, x: jax.Array, mask: jax.Array | None = None, *, deterministic: bool
    ) -> jax.Array:
        """Takes x (B, L, D) and an optional boolean mask broadcastable to (B, H, L, L);
        returns the normalized encoding (B, L, D) in `dtype`."""
        block_cls = block_class(self.remat, self.remat_policy, prevent_cse=not self.scan)
        block_kwargs = dict(
            mlp_dim=self.mlp_dim,
            num_heads=self.num_heads,
            dropout_rate=self.dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            attention_implementation=self.attention_implementation,
            attention_fn=self.attention_fn,
            mlp_activation=self.mlp_activation,
            layer_norm_eps=self.layer_norm_eps,
        )
        # None (no stochastic depth) keeps the rate a static 0 even under scan / remat.
        rates = self.drop_path_rates() if self.stochastic_depth else [None] * self.depth
        if self.scan:
            scanned = nn.scan(
                block_cls,
                variable_axes={"params": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(0, nn.broadcast, nn.broadcast),
                length=self.depth,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            layer_rates = None if rates[0] is None else jnp.asarray(rates, jnp.float32)
            x, _ = scanned(name="encoderblock", **block_kwargs)(x, layer_rates, mask, deterministic)
        else:
            for i in range(self.depth):
                x, _ = block_cls(name=f"encoderblock_{i}", **block_kwargs)(
                    x, rates[i], mask, deterministic
                )
        return layer_norm(self.dtype, self.param_dtype, name="encoder_norm",
                          epsilon=self.layer_norm_eps)(x)

    @nn.nowrap
    def drop_path_rates(self) -> list[float]:
        """Returns the stochastic depth rate of each of the `depth` blocks."""
        if self.stochastic_depth_schedule == "constant":
            return [float(self.stochastic_depth)] * self.depth
        if self.stochastic_depth_schedule == "linear":
            return [linear_drop_path_rate(self.stochastic_depth, i, self.depth)
                    for i in range(self.depth)]
        raise ValueError(
            f"stochastic_depth_schedule={self.stochastic_depth_schedule!r}; "
            "use 'linear' or 'constant'."
        )
