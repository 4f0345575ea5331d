"""Patch (2D) / tubelet (3D) embeddings and position embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any


class PatchEmbedding(nn.Module):
    """Non-overlapping patch embedding: a convolution with kernel = stride = patch_size.

    Works for images (patch_size (ph, pw), input (B, H, W, C)) and videos (tubelets:
    patch_size (pt, ph, pw), input (B, T, H, W, C)). Params `kernel`
    (*patch_size, C, features) and `bias` (features,) sit directly in this module, so a
    ViT naming it `embedding` has big_vision's `embedding/kernel` and `embedding/bias`.
    Spatial remainders that do not fill a patch are dropped ('VALID').

    Attributes:
      features: embedding width D.
      patch_size: 2 or 3 ints.
      dtype / param_dtype: compute and storage dtypes.
    """

    features: int
    patch_size: Sequence[int]
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Takes x (B, *spatial, C) with len(spatial) == len(patch_size); returns the grid of
        patch embeddings (B, *[s // p for s, p in zip(spatial, patch_size)], features)."""
        patch = tuple(int(p) for p in self.patch_size)
        n = len(patch)
        if n not in (2, 3) or x.ndim != n + 2:
            raise ValueError(
                f"patch_size={patch} needs 2 or 3 entries and input of rank {n + 2} "
                f"(B, *spatial, C); got input shape {x.shape}."
            )
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(self.kernel_init, (None,) * (n + 1) + ("embed",)),
            patch + (x.shape[-1], self.features),
            self.param_dtype,
        )
        bias = self.param(
            "bias",
            nn.with_logical_partitioning(self.bias_init, ("embed",)),
            (self.features,),
            self.param_dtype,
        )
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        spatial = "DHW"[-n:]
        dims = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
        y = jax.lax.conv_general_dilated(
            x, kernel, window_strides=patch, padding="VALID", dimension_numbers=dims
        )
        return y + bias


def posemb_sincos_2d(
    h: int, w: int, width: int, temperature: float = 10_000.0, dtype: Dtype = jnp.float32
) -> jax.Array:
    """Returns fixed 2D sine-cosine position embeddings of shape (1, h * w, width).

    Token k = (row y, column x) (row-major) gets, with q = width // 4 frequencies
    omega_j = temperature ** (-j / (q - 1)), the features
    [sin(x * omega), cos(x * omega), sin(y * omega), cos(y * omega)] (the MoCo v3 /
    big_vision layout). `width` must be a multiple of 4.
    """
    if width % 4:
        raise ValueError(f"sincos2d position embedding needs width % 4 == 0, got {width}.")
    q = width // 4
    omega = 1.0 / temperature ** (np.arange(q) / max(q - 1, 1))
    y, x = np.mgrid[:h, :w]
    x = np.outer(x.reshape(-1), omega)
    y = np.outer(y.reshape(-1), omega)
    pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
    return jnp.asarray(pe, dtype)[None]


def position_embedding(
    module: nn.Module,
    kind: str,
    grid_shape: Sequence[int],
    width: int,
    *,
    name: str = "pos_embedding",
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
) -> jax.Array:
    """Returns position embeddings (1, prod(grid_shape), width) in `dtype`.

    Call it from `module`'s compact method: kind 'learn' creates the param `name` there
    (shape (1, N, width), normal(1 / sqrt(width)) init, logical axes (None, None, 'embed'));
    kind 'sincos2d' (grid_shape (h, w)) is fixed and creates no param.
    """
    if kind == "learn":
        n = int(np.prod(grid_shape))
        pe = module.param(
            name,
            nn.with_logical_partitioning(
                nn.initializers.normal(stddev=width**-0.5), (None, None, "embed")
            ),
            (1, n, width),
            param_dtype,
        )
        return pe.astype(dtype)
    if kind == "sincos2d":
        if len(grid_shape) != 2:
            raise ValueError(f"posemb 'sincos2d' needs a 2D grid, got {tuple(grid_shape)}.")
        return posemb_sincos_2d(*grid_shape, width, dtype=dtype)
    raise ValueError(f"posemb={kind!r} is unknown; use 'learn' or 'sincos2d'.")
