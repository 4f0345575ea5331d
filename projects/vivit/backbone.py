"""ViViT video backbones (Arnab et al., "ViViT: A Video Vision Transformer", ICCV 2021).

One Linen module, `ViViT`, covers the paper's four models, chosen by `variant`:

- 'spatio_temporal' (model 1): every tubelet token attends to every other one.
- 'factorised_encoder' (model 2): a spatial encoder runs on each frame's tokens, its pooled
  output per frame (class token or mean) goes through a temporal encoder. With
  `temporal_depth=0` the per-frame outputs are averaged instead (the paper's "average
  pooling" baseline).
- 'factorised_self_attention' (model 3): each block attends over space, then over time
  (factorized.FactorizedSelfAttentionEncoder).
- 'factorised_dot_product' (model 4): half of each block's heads attend over time, half
  over space (factorized.factorized_dot_product_attention).

Interface (stable; MTV builds on it):

    model = ViViT(variant="factorised_encoder", num_classes=400, patch_size=(2, 16, 16),
                  hidden_size=768, depth=12, mlp_dim=3072, num_heads=12, temporal_depth=4)
    logits = model.apply({"params": p}, video, train=False)            # video (B, T, H, W, C)
    logits, out = model.apply(..., video, return_intermediates=True)

`out` holds 'stem' (B, t, h, w, D): the tubelet embeddings; 'encoded': the encoder output
((B, t*h*w [+1], D) for models 1/3/4; for model 2 the temporal encoder's (B, t [+1], D));
'spatial_encoded' (model 2 only: (B, t, h*w [+1], D)); 'pre_logits' (B, D) and 'logits'.
With `num_classes` 0/None there is no head and the call returns the pooled (B, D).
`tokens_to_grid` and `token_grid` help reuse the pieces.

Tokenisation: `patch_size` (pt, ph, pw) is a tubelet embedding (a 3D convolution with
kernel = stride, framework.layers.PatchEmbedding); pt = 1 with `num_sampled_frames` set is
the paper's uniform frame sampling (frames picked at evenly spaced indices, each embedded
like a ViT image).

Parameter tree (the big_vision ViT layout of framework.models.vit, so a 2D ViT maps onto it
name by name; the blocks are also Scenic's):
  embedding/{kernel (pt, ph, pw, C, D), bias}
  pos_embedding (1, t*h*w, D)               models 1, 3, 4 (learned, over all tokens)
  pos_embedding (1, h*w, D), temporal_pos_embedding (1, t, D)      model 2
  cls (1, 1, D)                              pool_type 'token' (models 1 and 2)
  temporal_cls (1, 1, D)                     model 2 with pool_type 'token'
  Transformer/encoderblock_{i}/..., Transformer/encoder_norm       models 1, 3, 4
    (model 3 blocks: LayerNorm_space, MultiHeadDotProductAttention_space, LayerNorm_time,
     MultiHeadDotProductAttention_time, LayerNorm_mlp, MlpBlock)
  SpatialTransformer/..., TemporalTransformer/...                  model 2 (Scenic names)
  pre_logits (representation_size), head (num_classes)
Position embeddings are added to the patch tokens before a class token is prepended (as
big_vision's ViT; Scenic adds one to the class token too). Differences from Scenic's tree:
the position embeddings sit at the top level, the classifier is `head` (Scenic:
`output_projection`) and the class tokens are `cls` / `temporal_cls` (Scenic:
`cls_SpatialTransformer` / `cls_TemporalTransformer`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from framework.layers import Encoder, PatchEmbedding, pool_tokens, position_embedding
from framework.layers.heads import classifier_head
from projects.vivit.factorized import (
    ATTENTION_ORDERS,
    FactorizedSelfAttentionEncoder,
    factorized_dot_product_attention,
)

VARIANTS = (
    "spatio_temporal",
    "factorised_encoder",
    "factorised_self_attention",
    "factorised_dot_product",
)
VIVIT_POOL_TYPES = ("token", "gap")


def token_grid(video_shape: Sequence[int], patch_size: Sequence[int],
               num_sampled_frames: int | None = None) -> tuple[int, int, int]:
    """Returns the token grid (t, h, w) of a video (B, T, H, W, C) or (T, H, W, C)."""
    frames, height, width = tuple(video_shape)[-4:-1]
    frames = num_sampled_frames or frames
    pt, ph, pw = patch_size
    return frames // pt, height // ph, width // pw


def sample_frames_uniformly(video: jax.Array, num_frames: int) -> jax.Array:
    """Returns `num_frames` frames of video (B, T, H, W, C) at evenly spaced indices
    (the first frame always included); (B, num_frames, H, W, C)."""
    total = video.shape[1]
    if num_frames > total:
        raise ValueError(f"num_sampled_frames={num_frames} exceeds the clip's {total} frames.")
    index = np.floor(np.arange(num_frames) * (total / num_frames)).astype(np.int32)
    return video[:, index]


def tokens_to_grid(tokens: jax.Array, grid: Sequence[int]) -> jax.Array:
    """Returns time-major tokens (B, t*h*w, D) as (B, t, h*w, D)."""
    t = grid[0]
    return jnp.reshape(tokens, (tokens.shape[0], t, -1, tokens.shape[-1]))


class ViViT(nn.Module):
    """ViViT backbone and classifier; see the module docstring for variants and params.

    Attributes:
      variant: one of VARIANTS.
      num_classes: head width; 0 / None -> no head.
      patch_size: tubelet (pt, ph, pw).
      num_sampled_frames: if set, that many frames are sampled uniformly before embedding.
      hidden_size, depth, mlp_dim, num_heads: the (spatial) encoder's shape.
      temporal_depth, temporal_mlp_dim, temporal_num_heads: model 2's temporal encoder
        (mlp_dim / num_heads None -> the spatial encoder's); temporal_depth 0 averages.
      pool_type: 'token' (class token; models 1 and 2) or 'gap' (mean over tokens).
      attention_order: model 3's 'space_time' (paper) or 'time_space'.
      dropout, attention_dropout, stochastic_depth, remat, remat_policy, scan, dtype,
        param_dtype, head_zeroinit, representation_size, attention_implementation:
        as in framework.models.vit.ViT (scan applies to models 1, 2 and 4).
    """

    variant: str = "spatio_temporal"
    num_classes: int | None = None
    patch_size: Sequence[int] = (2, 16, 16)
    num_sampled_frames: int | None = None
    hidden_size: int = 768
    depth: int = 12
    mlp_dim: int | None = None
    num_heads: int = 12
    temporal_depth: int = 4
    temporal_mlp_dim: int | None = None
    temporal_num_heads: int | None = None
    pool_type: str = "token"
    attention_order: str = "space_time"
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

    def _check(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r} is unknown; use one of {VARIANTS}.")
        if self.pool_type not in VIVIT_POOL_TYPES:
            raise ValueError(
                f"pool_type={self.pool_type!r} is unknown for ViViT; use one of "
                f"{VIVIT_POOL_TYPES}."
            )
        if self.pool_type == "token" and self.variant in VARIANTS[2:]:
            raise ValueError(
                f"pool_type='token' is not defined for variant {self.variant!r} (its "
                "attention needs equal-size frames); use pool_type='gap'."
            )
        if len(tuple(self.patch_size)) != 3:
            raise ValueError(f"patch_size={tuple(self.patch_size)} must be a tubelet (pt, ph, pw).")
        if self.attention_order not in ATTENTION_ORDERS:
            raise ValueError(f"attention_order={self.attention_order!r}; use one of "
                             f"{ATTENTION_ORDERS}.")

    @nn.nowrap
    def _encoder_kwargs(self, dtype, param_dtype) -> dict:
        return dict(
            dropout_rate=self.dropout,
            attention_dropout_rate=self.attention_dropout,
            stochastic_depth=self.stochastic_depth,
            remat=self.remat,
            remat_policy=self.remat_policy,
            dtype=dtype,
            param_dtype=param_dtype,
            attention_implementation=self.attention_implementation,
        )

    @nn.nowrap
    def _prepend_cls(self, x: jax.Array, name: str, param_dtype, dtype) -> jax.Array:
        batch, _, width = x.shape
        cls = self.param(
            name,
            nn.with_logical_partitioning(nn.initializers.zeros, (None, None, "embed")),
            (1, 1, width),
            param_dtype,
        )
        cls = jnp.broadcast_to(cls.astype(dtype), (batch, 1, width))
        return jnp.concatenate([cls, x], axis=1)

    @nn.compact
    def __call__(
        self, video: jax.Array, *, train: bool = False, return_intermediates: bool = False
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """Takes video (B, T, H, W, C); returns logits (B, num_classes) float32, or the pooled
        (B, D) without a head; with `return_intermediates`, (output, dict) as documented in
        the module docstring."""
        self._check()
        if video.ndim != 5:
            raise ValueError(f"ViViT takes video (B, T, H, W, C); got shape {video.shape}.")
        dtype = jnp.dtype(self.dtype)
        param_dtype = jnp.dtype(self.param_dtype)
        out = {}
        if self.num_sampled_frames:
            video = sample_frames_uniformly(video, self.num_sampled_frames)

        x = out["stem"] = PatchEmbedding(
            self.hidden_size,
            tuple(self.patch_size),
            dtype=dtype,
            param_dtype=param_dtype,
            name="embedding",
        )(video)
        batch, t, h, w, width = x.shape
        if min(t, h, w) == 0:
            raise ValueError(f"video {video.shape} has no complete tubelet of {self.patch_size}.")
        deterministic = not train

        if self.variant == "factorised_encoder":
            x = self._factorised_encoder(x, out, dtype, param_dtype, deterministic)
        else:
            x = jnp.reshape(x, (batch, t * h * w, width))
            x = x + position_embedding(self, "learn", (t, h, w), width, dtype=dtype,
                                       param_dtype=param_dtype)
            if self.pool_type == "token":
                x = self._prepend_cls(x, "cls", param_dtype, dtype)
            x = nn.Dropout(rate=self.dropout)(x, deterministic=deterministic)
            x = out["encoded"] = self._joint_encoder(t, dtype, param_dtype)(
                x, deterministic=deterministic)
            x = pool_tokens(x, self.pool_type)

        x = classifier_head(
            x, out, num_classes=self.num_classes,
            representation_size=self.representation_size,
            head_zeroinit=self.head_zeroinit, dtype=dtype, param_dtype=param_dtype)
        return (x, out) if return_intermediates else x

    @nn.nowrap
    def _joint_encoder(self, num_frames: int, dtype, param_dtype) -> nn.Module:
        """The `Transformer` of models 1, 3 and 4."""
        kwargs = dict(depth=self.depth, mlp_dim=self.mlp_dim, num_heads=self.num_heads,
                      **self._encoder_kwargs(dtype, param_dtype), name="Transformer")
        if self.variant == "factorised_self_attention":
            return FactorizedSelfAttentionEncoder(
                num_frames=num_frames, attention_order=self.attention_order, **kwargs)
        if self.variant == "factorised_dot_product":
            kwargs["attention_fn"] = functools.partial(
                factorized_dot_product_attention, num_frames=num_frames,
                implementation=self.attention_implementation)
        return Encoder(scan=self.scan, **kwargs)

    @nn.nowrap
    def _factorised_encoder(self, x, out, dtype, param_dtype, deterministic) -> jax.Array:
        """Model 2: x (B, t, h, w, D) -> pooled (B, D); fills out['spatial_encoded', 'encoded']."""
        batch, t, h, w, width = x.shape
        x = jnp.reshape(x, (batch * t, h * w, width))
        x = x + position_embedding(self, "learn", (h, w), width, dtype=dtype,
                                   param_dtype=param_dtype)
        if self.pool_type == "token":
            x = self._prepend_cls(x, "cls", param_dtype, dtype)
        x = nn.Dropout(rate=self.dropout)(x, deterministic=deterministic)
        x = Encoder(depth=self.depth, mlp_dim=self.mlp_dim, num_heads=self.num_heads,
                    scan=self.scan, **self._encoder_kwargs(dtype, param_dtype),
                    name="SpatialTransformer")(x, deterministic=deterministic)
        out["spatial_encoded"] = jnp.reshape(x, (batch, t) + x.shape[1:])
        x = jnp.reshape(pool_tokens(x, self.pool_type), (batch, t, width))
        if not self.temporal_depth:
            out["encoded"] = x
            return jnp.mean(x, axis=1)
        x = x + position_embedding(self, "learn", (t,), width, name="temporal_pos_embedding",
                                   dtype=dtype, param_dtype=param_dtype)
        if self.pool_type == "token":
            x = self._prepend_cls(x, "temporal_cls", param_dtype, dtype)
        x = out["encoded"] = Encoder(
            depth=self.temporal_depth,
            mlp_dim=self.temporal_mlp_dim or self.mlp_dim,
            num_heads=self.temporal_num_heads or self.num_heads,
            scan=self.scan,
            **self._encoder_kwargs(dtype, param_dtype),
            name="TemporalTransformer",
        )(x, deterministic=deterministic)
        return pool_tokens(x, self.pool_type)
