"""Multi-head dot-product attention with big_vision / flax parameter names."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework.layers.blockwise_attention import blockwise_dot_product_attention
from framework.layers.linear import LinearGeneral

Dtype = Any
Initializer = Any

# Query-key pairs (Lq * Lk) from which attention counts as long outside the blockwise core
# (its weights are then recomputed in the backward pass instead of stored): 1024 x 1024
# (ViT-B/16 at 224 px has 197 x 197, ViViT-B/16x2 model 1 at 32 frames 3137 x 3137).
LONG_ATTENTION_PAIRS = 1024 * 1024
IMPLEMENTATIONS = (None, "xla", "cudnn", "blockwise")


class MultiHeadDotProductAttention(nn.Module):
    """Multi-head attention; the core is `jax.nn.dot_product_attention`.

    Params: `query`, `key`, `value` (kernel (D, H, Dh), bias (H, Dh)) and `out`
    (kernel (H, Dh, D_out), bias (D_out,)), the layout of flax's and big_vision's attention,
    so their checkpoints load as they are.

    Attention-weight dropout: `jax.nn.dot_product_attention` has none, so when
    `dropout_rate > 0` and the call is not deterministic, the weights are computed
    explicitly (softmax in float32, dropout, weighted sum), ignoring
    `attention_implementation`. Evaluation always uses the fused core.

    Attributes:
      num_heads: number of heads H.
      qkv_features: total width of q/k/v (H * Dh); defaults to the query's width D.
      out_features: output width; defaults to the query's width D.
      dropout_rate: dropout on the attention weights (training only, explicit path).
      dtype: compute dtype; params are stored in `param_dtype`.
      attention_implementation: None (on CPU attention without a mask runs blockwise;
        otherwise `jax.nn.dot_product_attention` chooses), 'xla', 'cudnn' (GPU flash
        attention; both passed to `jax.nn.dot_product_attention`) or 'blockwise'
        (`blockwise_dot_product_attention`: weights never stored, recomputed in the
        backward pass; long sequences one head and block of queries at a time; no mask).
      use_bias: whether the four projections have biases.
      attention_fn: optional core replacing `jax.nn.dot_product_attention`: called as
        `attention_fn(query, key, value, mask)` on (B, L, H, Dh) arrays, returning
        (B, Lq, H, Dh) (e.g. ViViT's factorised dot-product attention). It gets no
        attention-weight dropout: with `dropout_rate > 0` in training it raises.
      out_kernel_init: initializer of the `out` kernel; None means `kernel_init` (zeros makes
        a new residual branch start as the identity, e.g. cross-view attention in MTV).
    """

    num_heads: int
    qkv_features: int | None = None
    out_features: int | None = None
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None
    use_bias: bool = True
    attention_fn: Any = None
    kernel_init: Initializer = nn.initializers.xavier_uniform()
    bias_init: Initializer = nn.initializers.zeros
    out_kernel_init: Initializer | None = None

    @nn.compact
    def __call__(
        self,
        inputs_q: jax.Array,
        inputs_kv: jax.Array | None = None,
        mask: jax.Array | None = None,
        *,
        deterministic: bool,
    ) -> jax.Array:
        """Attends from inputs_q (B, Lq, D) to inputs_kv (B, Lk, Dkv) (default: inputs_q).

        `mask`: boolean, broadcastable to (B, H, Lq, Lk); True where attention is allowed.
        Returns (B, Lq, out_features) in `dtype`.
        """
        if inputs_kv is None:
            inputs_kv = inputs_q
        features = self.qkv_features or inputs_q.shape[-1]
        if features % self.num_heads:
            raise ValueError(
                f"qkv_features={features} is not divisible by num_heads={self.num_heads}."
            )
        head_dim = features // self.num_heads

        def projection(name: str) -> LinearGeneral:
            return LinearGeneral(
                features=(self.num_heads, head_dim),
                num_in=1,
                kernel_axes=("embed", "heads", "kv"),
                bias_axes=("heads", "kv"),
                use_bias=self.use_bias,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=self.kernel_init,
                bias_init=self.bias_init,
                name=name,
            )

        # (B, L, H, Dh): the layout jax.nn.dot_product_attention expects.
        query = projection("query")(inputs_q)
        key = projection("key")(inputs_kv)
        value = projection("value")(inputs_kv)

        if self.attention_fn is not None:
            if self.dropout_rate > 0.0 and not deterministic:
                raise ValueError(
                    f"attention dropout ({self.dropout_rate}) is not supported with a custom "
                    "attention_fn; set the attention dropout rate to 0."
                )
            x = self.attention_fn(query, key, value, mask)
        elif self.dropout_rate > 0.0 and not deterministic:
            x = self._attend_with_dropout(query, key, value, mask)
        else:
            x = self._attend(query, key, value, mask)

        return LinearGeneral(
            features=(self.out_features or inputs_q.shape[-1],),
            num_in=2,
            kernel_axes=("heads", "kv", "embed"),
            bias_axes=("embed",),
            use_bias=self.use_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=self.out_kernel_init or self.kernel_init,
            bias_init=self.bias_init,
            name="out",
        )(x)

    @nn.nowrap
    def _attend(self, query: jax.Array, key: jax.Array, value: jax.Array,
                mask: jax.Array | None) -> jax.Array:
        """The attention core; (B, L, H, Dh) in and out.

        Outside cuDNN's fused kernel `jax.nn.dot_product_attention` materialises the
        weights (B, H, Lq, Lk), about 0.5 GB per layer for ViViT model 1's 3137 tokens,
        passes over them several times and stores them for the backward pass. On CPU,
        attention without a mask therefore runs blockwise (ViT-B/16's forward pass: 3x
        faster attention); elsewhere long attention (LONG_ATTENTION_PAIRS on) recomputes
        its weights in the backward pass instead of storing them (one more q.k product).
        """
        implementation = self.attention_implementation
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"attention_implementation={implementation!r}; use one of "
                             f"{IMPLEMENTATIONS}.")
        if implementation is None and mask is None and jax.default_backend() == "cpu":
            implementation = "blockwise"
        if implementation == "blockwise":
            if mask is not None:
                raise ValueError("attention_implementation='blockwise' takes no mask; use "
                                 "None or 'xla' for masked attention.")
            return blockwise_dot_product_attention(query, key, value)

        def attend(q, k, v, m):
            return jax.nn.dot_product_attention(q, k, v, mask=m, implementation=implementation)

        if implementation != "cudnn" and query.shape[1] * key.shape[1] >= LONG_ATTENTION_PAIRS:
            attend = jax.checkpoint(attend)
        return attend(query, key, value, mask)

    @nn.nowrap
    def _attend_with_dropout(
        self, query: jax.Array, key: jax.Array, value: jax.Array, mask: jax.Array | None
    ) -> jax.Array:
        """Explicit attention with dropout on the weights; (B, L, H, Dh) in and out."""
        scale = query.shape[-1] ** -0.5
        logits = (
            jnp.einsum("bqhd,bkhd->bhqk", query, key, preferred_element_type=jnp.float32) * scale
        )
        if mask is not None:
            logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = nn.Dropout(self.dropout_rate)(weights, deterministic=False)
        return jnp.einsum("bhqk,bkhd->bqhd", weights.astype(value.dtype), value)
