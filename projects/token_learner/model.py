"""ViT / ViViT with a TokenLearner (and optionally TokenFusers) inserted at a layer.

Images (B, H, W, C) are cut into 2D patches, videos (B, T, H, W, C) into 3D tubelets by
framework.layers.PatchEmbedding. Up to layer `tokenlearner_loc` the encoder sees every
patch token; there a TokenLearner pools each temporal slice's h*w tokens (or, with
tokens_per='clip', all t*h*w tokens at once) into `num_tokens` learned tokens, and the
remaining layers see only those: num_tokens tokens for an image, t * num_tokens for a video
(t = T / tubelet time; tubelet time 1 learns tokens per frame, 2 per 2-frame tubelet slice).

With `use_token_fuser`, every layer from `tokenlearner_loc` on is TokenLearner ->
transformer block -> TokenFuser plus a residual, so the sequence returns to full length
after each layer (Scenic's EncoderModFuser).

Parameter tree (big_vision ViT names, so a ViT checkpoint loads with `init_from`):
`embedding`, `pos_embedding` (1, N, D), `Transformer/encoderblock_{i}`,
`Transformer/encoder_norm`, `head`; the TokenLearner lives at
`Transformer/TokenLearnerModuleV11_0` (v1.1) or `Transformer/TokenLearnerModule_0` (v1.0)
(with fusers: one per layer, `..._{k}`, and `Transformer/TokenFuser_{k}`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework import registry
from framework.layers import (
    Encoder,
    PatchEmbedding,
    block_class,
    layer_norm,
    position_embedding,
)
from framework.layers.heads import classifier_head
from projects.token_learner.modules import TOKEN_LEARNERS, TokenFuser

Dtype = Any
TOKENS_PER = ("time_step", "clip")
_MODULE_NAMES = {"1.0": "TokenLearnerModule", "1.1": "TokenLearnerModuleV11"}


class TokenLearnerEncoder(nn.Module):
    """The encoder stack of `depth` EncoderBlocks with a TokenLearner at `tokenlearner_loc`.

    Attributes:
      depth, mlp_dim, num_heads, dropout_rate, attention_dropout_rate, stochastic_depth:
        as in framework.layers.Encoder (linear stochastic depth schedule).
      tokenlearner_loc: index of the first block that sees learned tokens; None = a plain
        encoder (no TokenLearner).
      num_tokens: tokens learned per group.
      tokenlearner_version: '1.0' (conv maps, sigmoid) or '1.1' (MLP maps, softmax).
      bottleneck_dim: hidden width of the v1.1 map MLP and of the TokenFuser MLP.
      use_token_fuser: TokenLearner -> block -> TokenFuser at every layer from the loc.
      remat, remat_policy: recompute each block's activations in the backward pass (see
        framework.layers.Encoder); the parameters are the same.
      dtype / param_dtype / attention_implementation: passed to every block.
    """

    depth: int
    mlp_dim: int | None
    num_heads: int
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    stochastic_depth: float = 0.0
    tokenlearner_loc: int | None = None
    num_tokens: int = 8
    tokenlearner_version: str = "1.1"
    bottleneck_dim: int = 64
    use_token_fuser: bool = False
    remat: bool = False
    remat_policy: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, groups: int, grid_shape: Sequence[int] | None, *,
                 deterministic: bool) -> jax.Array:
        """Takes x (B, groups * L, D): `groups` runs of L tokens, each pooled on its own
        (grid_shape (h, w) with h * w = L, or None for a flat run); returns the encoding
        (B, L', D) after `encoder_norm`, L' = groups * num_tokens after the TokenLearner
        (or groups * L with TokenFusers or without a TokenLearner)."""
        rates = Encoder(depth=self.depth, mlp_dim=self.mlp_dim, num_heads=self.num_heads,
                        stochastic_depth=self.stochastic_depth).drop_path_rates()
        learner_count = 0
        block_cls = block_class(self.remat, self.remat_policy)
        for i in range(self.depth):
            block = block_cls(
                mlp_dim=self.mlp_dim, num_heads=self.num_heads, dropout_rate=self.dropout_rate,
                attention_dropout_rate=self.attention_dropout_rate, dtype=self.dtype,
                param_dtype=self.param_dtype,
                attention_implementation=self.attention_implementation,
                name=f"encoderblock_{i}")
            rate = rates[i] if self.stochastic_depth else None
            learn_here = self.tokenlearner_loc is not None and (
                i == self.tokenlearner_loc or (self.use_token_fuser and i > self.tokenlearner_loc))
            if not learn_here:
                x, _ = block(x, rate, None, deterministic)
                continue
            batch, _, width = x.shape
            original = x.reshape(batch * groups, -1, width)
            tokens = self._learner(learner_count)(original, grid_shape,
                                                  deterministic=deterministic)
            x, _ = block(tokens.reshape(batch, -1, width), rate, None, deterministic)
            if self.use_token_fuser:
                fused = TokenFuser(bottleneck_dim=self.bottleneck_dim,
                                   dropout_rate=self.dropout_rate, dtype=self.dtype,
                                   param_dtype=self.param_dtype,
                                   name=f"TokenFuser_{learner_count}")(
                    x.reshape(batch * groups, self.num_tokens, width), original,
                    deterministic=deterministic)
                x = (fused + original).reshape(batch, -1, width)
            learner_count += 1
        return layer_norm(self.dtype, self.param_dtype, name="encoder_norm")(x)

    def _learner(self, index: int) -> nn.Module:
        cls = TOKEN_LEARNERS[self.tokenlearner_version]
        name = f"{_MODULE_NAMES[self.tokenlearner_version]}_{index}"
        if self.tokenlearner_version == "1.0":
            return cls(self.num_tokens, dtype=self.dtype, param_dtype=self.param_dtype,
                       name=name)
        return cls(self.num_tokens, bottleneck_dim=self.bottleneck_dim,
                   dropout_rate=self.dropout_rate, dtype=self.dtype,
                   param_dtype=self.param_dtype, name=name)


@registry.MODELS.register("token_learner.classifier", formerly=("token_learner_classification",))
class TokenLearnerClassifier(nn.Module):
    """Registry model "token_learner.classifier": ViT (images) or unfactorised ViViT
    (videos) with a TokenLearner, global average pooling and a linear head.

    Reads batch["image"] (B, H, W, C) with a 2D patch_size, or batch["video"]
    (B, T, H, W, C) with a 3D (tubelet) patch_size.

    Attributes:
      num_classes: head width.
      patch_size: (ph, pw) for images, (pt, ph, pw) for videos.
      hidden_size, depth, mlp_dim (None -> 4 * hidden_size), num_heads: encoder shape.
      posemb: 'learn' (one table over all patches) or 'sincos2d' (images only).
      dropout, attention_dropout, stochastic_depth: regularisation (see ViT).
      tokenlearner_loc: first block after the TokenLearner; None -> no TokenLearner.
      num_tokens: learned tokens per group (8 or 16 in the paper).
      tokenlearner_version: '1.1' (default, Scenic's recommendation) or '1.0'.
      bottleneck_dim: MLP hidden width in the v1.1 TokenLearner and the TokenFuser.
      use_token_fuser: TokenLearner + TokenFuser at every layer from the loc on.
      remat, remat_policy: recompute block activations in the backward pass (less memory).
      tokens_per: videos only: 'time_step' (num_tokens per temporal slice of tubelets)
        or 'clip' (num_tokens for the whole clip; v1.1 only).
      dtype / param_dtype: compute and storage dtypes (names or jnp dtypes).
      head_zeroinit: zero-init the head kernel.
      head_bias_init: initial value of every head bias (Scenic's `init_head_bias`; -10 keeps
        a sigmoid loss small at the start).
      attention_implementation: passed to jax.nn.dot_product_attention.
    """

    num_classes: int
    patch_size: Sequence[int] = (16, 16)
    hidden_size: int = 768
    depth: int = 12
    mlp_dim: int | None = None
    num_heads: int = 12
    posemb: str = "learn"
    dropout: float = 0.0
    attention_dropout: float = 0.0
    stochastic_depth: float = 0.0
    tokenlearner_loc: int | None = None
    num_tokens: int = 8
    tokenlearner_version: str = "1.1"
    bottleneck_dim: int = 64
    use_token_fuser: bool = False
    tokens_per: str = "time_step"
    remat: bool = False
    remat_policy: str | None = None
    dtype: Any = "float32"
    param_dtype: Any = "float32"
    head_zeroinit: bool = True
    head_bias_init: float = 0.0
    attention_implementation: str | None = None

    @nn.compact
    def __call__(self, batch: dict[str, jax.Array], *, train: bool = False) -> jax.Array:
        """Takes the batch dict; returns logits (B, num_classes) float32."""
        self._check_fields()
        pixels = self._pixels(batch)
        dtype, param_dtype = jnp.dtype(self.dtype), jnp.dtype(self.param_dtype)
        x = PatchEmbedding(self.hidden_size, tuple(self.patch_size), dtype=dtype,
                           param_dtype=param_dtype, name="embedding")(pixels)
        batch_size, *grid, width = x.shape
        x = x.reshape(batch_size, -1, width)
        x = x + position_embedding(self, self.posemb, grid, width, dtype=dtype,
                                   param_dtype=param_dtype)
        x = nn.Dropout(rate=self.dropout)(x, deterministic=not train)
        groups, group_grid = self._groups(grid)
        x = TokenLearnerEncoder(
            depth=self.depth, mlp_dim=self.mlp_dim, num_heads=self.num_heads,
            dropout_rate=self.dropout, attention_dropout_rate=self.attention_dropout,
            stochastic_depth=self.stochastic_depth, tokenlearner_loc=self.tokenlearner_loc,
            num_tokens=self.num_tokens, tokenlearner_version=self.tokenlearner_version,
            bottleneck_dim=self.bottleneck_dim, use_token_fuser=self.use_token_fuser,
            remat=self.remat, remat_policy=self.remat_policy, dtype=dtype,
            param_dtype=param_dtype,
            attention_implementation=self.attention_implementation, name="Transformer",
        )(x, groups, group_grid, deterministic=not train)
        return classifier_head(jnp.mean(x, axis=1), {}, num_classes=self.num_classes,
                               head_zeroinit=self.head_zeroinit,
                               head_bias_init=self.head_bias_init, param_dtype=param_dtype)

    def _pixels(self, batch: dict[str, jax.Array]) -> jax.Array:
        key = "video" if "video" in batch else "image"
        if key not in batch:
            raise ValueError(f"token_learner.classifier reads batch['image'] or "
                             f"batch['video']; the batch has {sorted(batch)}.")
        pixels = batch[key]
        if pixels.ndim != len(self.patch_size) + 2:
            raise ValueError(
                f"config.model.patch_size={tuple(self.patch_size)} does not fit "
                f"batch['{key}'] of shape {pixels.shape}: use 2 sizes (ph, pw) for images "
                "(B, H, W, C) and 3 (pt, ph, pw) for videos (B, T, H, W, C).")
        return pixels

    @nn.nowrap
    def _groups(self, grid: Sequence[int]) -> tuple[int, tuple[int, ...] | None]:
        """Returns (number of groups pooled separately, each group's grid shape)."""
        if len(grid) == 2 or self.tokens_per == "time_step":
            return (1 if len(grid) == 2 else grid[0]), tuple(grid[-2:])
        return 1, None

    @nn.nowrap
    def _check_fields(self) -> None:
        if self.tokenlearner_version not in TOKEN_LEARNERS:
            raise ValueError(f"config.model.tokenlearner_version={self.tokenlearner_version!r}; "
                             f"use one of {sorted(TOKEN_LEARNERS)}.")
        if self.tokens_per not in TOKENS_PER:
            raise ValueError(f"config.model.tokens_per={self.tokens_per!r}; use one of "
                             f"{TOKENS_PER}.")
        loc = self.tokenlearner_loc
        if loc is not None and not 0 <= loc < self.depth:
            raise ValueError(f"config.model.tokenlearner_loc={loc} must be in [0, depth="
                             f"{self.depth}) (or None for no TokenLearner).")
        if self.num_tokens < 1:
            raise ValueError(f"config.model.num_tokens={self.num_tokens} must be positive.")

