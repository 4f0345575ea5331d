"""Image-text two-tower model (LiT, SigLIP, CLIP) with big_vision's parameter layout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from framework import registry
from framework.models.vit import ViT
from projects.image_text.text_transformer import TextTransformer


def l2_normalize(x: jax.Array) -> jax.Array:
    """Returns x (B, D) float32 divided by its L2 norm per row (+1e-8, as big_vision)."""
    x = x.astype(jnp.float32)
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


@registry.MODELS.register("image_text.two_tower", formerly=("two_tower",))
class TwoTower(nn.Module):
    """An image tower (ViT) and a text tower (TextTransformer) embedding into one space.

    Parameter tree: `img/...` (a ViT tree), `txt/...` (a TextTransformer tree), `t` (1,)
    holding log(temperature) and, when `bias_init` is set (SigLIP), `b` (1,). This is the
    layout of big_vision's `proj.image_text.two_towers`, so its LiT and SigLIP `.npz`
    checkpoints load with the default init adapter.

    Called with a batch dict holding `image` (B, H, W, 3) and/or `text` int (B, L); a tower
    whose input is missing is skipped (zero-shot evaluation embeds class names alone).

    Attributes:
      image: ViT keyword arguments (hidden_size, depth, patch_size, pool_type, ...). The
        image head (`img/head`) has width out_dim[0]; ViT's `num_classes` must not be given.
      text: TextTransformer keyword arguments (vocab_size, hidden_size, depth, ...).
      out_dim: embedding width of both towers, or (image, text) widths; a width of None or 0
        means no projection head on that tower (its pooled features are the embedding, as
        SigLIP's image tower).
      temperature_init: initial temperature; `t` is stored as its log (SigLIP: 10, so
        t' = log 10).
      bias_init: initial logit bias `b` (SigLIP: -10); None -> no bias param (LiT / CLIP).
      lock_image: LiT's locked image tower: its embedding is wrapped in stop_gradient, so no
        gradient is computed through it (freeze its params in config.optimizer.freeze too, so
        they get no optimizer state).
      image_key / text_key: batch keys of the two inputs.
    """

    image: Mapping[str, Any] | None = None
    text: Mapping[str, Any] | None = None
    out_dim: int | Sequence[int | None] | None = 128
    temperature_init: float = 1.0
    bias_init: float | None = None
    lock_image: bool = False
    image_key: str = "image"
    text_key: str = "text"

    def out_dims(self) -> tuple[int | None, int | None]:
        """Returns (image head width, text head width); None = no head."""
        dims = self.out_dim
        if dims is None or isinstance(dims, int | np.integer):
            return (dims or None, dims or None)
        if len(dims) != 2:
            raise ValueError(f"out_dim={dims!r}: give one int or an (image, text) pair.")
        return tuple(int(d) if d else None for d in dims)

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> dict:
        """Takes batch {image_key: (B, H, W, 3), text_key: int (B, L)} (either may be absent).

        Returns {"zimg": (B, E_img), "ztxt": (B, E_txt) (L2-normalised, float32, present
        when their input is), "t": () the temperature exp(t), "b": () the bias (when
        bias_init is set)}.
        """
        img_dim, txt_dim = self.out_dims()
        out = {}
        if self.image_key in batch:
            kwargs = {"head_zeroinit": False, **dict(self.image or {})}
            if "num_classes" in kwargs:
                raise ValueError("model.image.num_classes: set the embedding width with "
                                 "model.out_dim instead.")
            zimg = ViT(num_classes=img_dim, name="img", **kwargs)(batch[self.image_key],
                                                                  train=train and not
                                                                  self.lock_image)
            if self.lock_image:
                zimg = jax.lax.stop_gradient(zimg)
            out["zimg"] = l2_normalize(zimg)
        if self.text_key in batch:
            kwargs = dict(self.text or {})
            if "num_classes" in kwargs:
                raise ValueError("model.text.num_classes: set the embedding width with "
                                 "model.out_dim instead.")
            ztxt = TextTransformer(num_classes=txt_dim, name="txt", **kwargs)(
                batch[self.text_key], train=train)
            out["ztxt"] = l2_normalize(ztxt)
        if "zimg" in out and "ztxt" in out and out["zimg"].shape[-1] != out["ztxt"].shape[-1]:
            raise ValueError(f"the image embedding has width {out['zimg'].shape[-1]} but the "
                             f"text embedding {out['ztxt'].shape[-1]}; set model.out_dim so "
                             "they match.")
        log_t = self.param("t", _constant(float(np.log(self.temperature_init))), (1,),
                           jnp.float32)
        out["t"] = jnp.exp(log_t[0])
        if self.bias_init is not None:
            out["b"] = self.param("b", _constant(float(self.bias_init)), (1,), jnp.float32)[0]
        return out


def _constant(value: float):
    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init
