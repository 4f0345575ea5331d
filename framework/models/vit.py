"""Vision Transformer backbone and classifier with big_vision's parameter layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework import registry
from framework.layers import (
    POOL_TYPES,
    Encoder,
    MAPHead,
    PatchEmbedding,
    pool_tokens,
    position_embedding,
)
from framework.layers.heads import classifier_head

Dtype = Any


class ViT(nn.Module):
    """ViT (Dosovitskiy et al. 2021) as in big_vision.

    Parameter tree: `embedding` (patch conv), `pos_embedding` (1, N, D) when posemb is
    'learn' (added to the patches before the class token is prepended, so N = number of
    patches), `cls` (1, 1, D) when pool_type is 'token', `Transformer/encoderblock_{i}/...`
    (or `Transformer/encoderblock/...` stacked on a leading depth axis when `scan`),
    `Transformer/encoder_norm`, `MAPHead_0` when pool_type is 'map', `pre_logits` when
    representation_size is set, and `head` when num_classes is set.

    Attributes:
      num_classes: head width; 0 / None -> no head, the call returns pre-logits.
      patch_size: (ph, pw).
      hidden_size, depth, mlp_dim (None -> 4 * hidden_size), num_heads: encoder shape.
      posemb: 'learn' or 'sincos2d'.
      pool_type: 'token', 'gap', 'map' or 'none' (no pooling: (B, L, D) tokens out).
      dropout: dropout after the embeddings and inside blocks.
      attention_dropout: dropout on attention weights (explicit attention path).
      stochastic_depth: largest drop-path rate, growing linearly over depth.
      remat, remat_policy, scan: see framework.layers.Encoder.
      dtype: compute dtype, a name ('float32', 'bfloat16') or a jnp dtype; params stay in
        param_dtype (float32). Logits are float32.
      head_zeroinit: zero-init the head kernel (big_vision default).
      representation_size: if set, a `pre_logits` Dense + tanh of that width before the head.
      attention_implementation: the attention core (None, 'xla', 'cudnn', 'blockwise'; see
        MultiHeadDotProductAttention).
      mlp_activation: 'gelu_tanh' (big_vision) or 'gelu_exact' (timm and the Hub's ViT
        checkpoints, whose outputs it reproduces).
      layer_norm_eps: the LayerNorms' epsilon (big_vision and timm 1e-6; the Hub's ViT
        checkpoints 1e-12).
    """

    num_classes: int | None = None
    patch_size: Sequence[int] = (16, 16)
    hidden_size: int = 768
    depth: int = 12
    mlp_dim: int | None = None
    num_heads: int = 12
    posemb: str = "learn"
    pool_type: str = "token"
    dropout: float = 0.0
    attention_dropout: float = 0.0
    stochastic_depth: float = 0.0
    remat: bool = False
    remat_policy: str | None = None
    scan: bool = False
    dtype: Any = "float32"
    param_dtype: Any = "float32"
    head_zeroinit: bool = True
    representation_size: int | None = None
    attention_implementation: str | None = None
    mlp_activation: str = "gelu_tanh"
    layer_norm_eps: float = 1e-6

    @nn.compact
    def __call__(
        self, image: jax.Array, *, train: bool = False, return_intermediates: bool = False
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """Takes image (B, H, W, C) and returns logits (B, num_classes) float32.

        Without a head, returns the pooled representation (B, D) in `dtype`. With pool_type
        'none' every token is kept: (B, L, num_classes) logits or (B, L, D) features.
        With `return_intermediates`, returns (output, dict) where the dict holds 'stem'
        (B, h, w, D), 'encoded' (B, L, D, after encoder_norm), 'pre_logits' and 'logits'
        (when there is a head).
        """
        if self.pool_type not in POOL_TYPES:
            raise ValueError(f"pool_type={self.pool_type!r} is unknown; use one of {POOL_TYPES}.")
        dtype = jnp.dtype(self.dtype)
        param_dtype = jnp.dtype(self.param_dtype)
        out = {}

        x = out["stem"] = PatchEmbedding(
            self.hidden_size,
            tuple(self.patch_size),
            dtype=dtype,
            param_dtype=param_dtype,
            name="embedding",
        )(image)
        batch, *grid, width = x.shape
        x = jnp.reshape(x, (batch, -1, width))
        x = x + position_embedding(
            self, self.posemb, grid, width, dtype=dtype, param_dtype=param_dtype
        )
        if self.pool_type == "token":
            cls = self.param(
                "cls",
                nn.with_logical_partitioning(nn.initializers.zeros, (None, None, "embed")),
                (1, 1, width),
                param_dtype,
            )
            cls = jnp.broadcast_to(cls.astype(dtype), (batch, 1, width))
            x = jnp.concatenate([cls, x], axis=1)
        x = nn.Dropout(rate=self.dropout)(x, deterministic=not train)

        x = out["encoded"] = Encoder(
            depth=self.depth,
            mlp_dim=self.mlp_dim,
            num_heads=self.num_heads,
            dropout_rate=self.dropout,
            attention_dropout_rate=self.attention_dropout,
            stochastic_depth=self.stochastic_depth,
            remat=self.remat,
            remat_policy=self.remat_policy,
            scan=self.scan,
            dtype=dtype,
            param_dtype=param_dtype,
            attention_implementation=self.attention_implementation,
            mlp_activation=self.mlp_activation,
            layer_norm_eps=self.layer_norm_eps,
            name="Transformer",
        )(x, deterministic=not train)

        if self.pool_type == "map":
            x = MAPHead(
                num_heads=self.num_heads,
                mlp_dim=self.mlp_dim,
                dtype=dtype,
                param_dtype=param_dtype,
                attention_implementation=self.attention_implementation,
                mlp_activation=self.mlp_activation,
                layer_norm_eps=self.layer_norm_eps,
            )(x, deterministic=not train)
        else:
            x = pool_tokens(x, self.pool_type)

        x = classifier_head(
            x, out, num_classes=self.num_classes,
            representation_size=self.representation_size,
            head_zeroinit=self.head_zeroinit, dtype=dtype, param_dtype=param_dtype)
        return (x, out) if return_intermediates else x


@registry.MODELS.register("vit_classification")
class ViTClassifier(ViT):
    """Registry model "vit_classification": a ViT reading the image from a batch dict.

    Same fields and parameter tree as ViT.
    """

    def __call__(self, batch: dict[str, jax.Array], *, train: bool = False) -> jax.Array:
        """Takes batch with "image" (B, H, W, C); returns logits (B, num_classes) float32."""
        return super().__call__(batch["image"], train=train)
