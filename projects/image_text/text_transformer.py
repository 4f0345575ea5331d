"""Text transformer (the text tower of LiT / SigLIP) with big_vision's parameter layout."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework.layers import Encoder, MAPHead, pool_tokens, position_embedding

TEXT_POOL_TYPES = ("last", "first", "gap", "max", "map")


class TextTransformer(nn.Module):
    """A pre-norm transformer encoder over token ids, pooled to one vector per text.

    Parameter tree (big_vision's `proj.image_text.text_transformer`): `Embed_0/embedding`
    (vocab_size, D), `pos_embedding` (1, L, D), `Encoder_0/encoderblock_{i}/...` (or
    `Encoder_0/encoderblock/...` stacked when `scan`), `Encoder_0/encoder_norm`, `MAPHead_0`
    when pool_type is 'map', and `head` (D -> num_classes) when num_classes is set. The
    sequence length L is fixed at init by the text's length.

    Attention is bidirectional and unmasked, as in big_vision: texts are padded to a fixed
    length, and with 'sticky' EOS padding (every pad is the EOS id) the last token sees the
    whole caption, which is why 'last' pooling is the default.

    Attributes:
      num_classes: output width of the `head` projection; 0 / None -> no head.
      vocab_size: number of token ids.
      hidden_size, depth, mlp_dim (None -> 4 * D), num_heads: encoder shape (the keys of
        configs.model_sizes.vit_config, so `vit_config("B")` gives a B-sized text tower).
      pool_type: 'last', 'first', 'gap' (mean), 'max' or 'map' (attention pooling).
      dropout: dropout inside the encoder blocks.
      remat, remat_policy, scan, dtype, param_dtype, attention_implementation,
        mlp_activation: as in ViT.
    """

    num_classes: int | None = None
    vocab_size: int = 32_000
    hidden_size: int = 512
    depth: int = 12
    mlp_dim: int | None = None
    num_heads: int = 8
    pool_type: str = "last"
    dropout: float = 0.0
    remat: bool = False
    remat_policy: str | None = None
    scan: bool = False
    dtype: Any = "float32"
    param_dtype: Any = "float32"
    attention_implementation: str | None = None
    mlp_activation: str = "gelu_tanh"

    @nn.compact
    def __call__(self, text: jax.Array, *, train: bool = False) -> jax.Array:
        """Takes token ids text int (B, L); returns (B, num_classes or D) float32."""
        if self.pool_type not in TEXT_POOL_TYPES:
            raise ValueError(f"text pool_type={self.pool_type!r} is unknown; use one of "
                             f"{TEXT_POOL_TYPES}.")
        if text.ndim != 2:
            raise ValueError(f"text must be token ids of shape (B, L); got shape {text.shape}.")
        dtype = jnp.dtype(self.dtype)
        param_dtype = jnp.dtype(self.param_dtype)
        embed = nn.Embed(
            num_embeddings=self.vocab_size,
            features=self.hidden_size,
            dtype=dtype,
            param_dtype=param_dtype,
            embedding_init=nn.with_logical_partitioning(
                nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0),
                ("vocab", "embed")),
            name="Embed_0",
        )
        x = embed(text)
        x = x + position_embedding(self, "learn", (text.shape[1],), self.hidden_size,
                                   dtype=dtype, param_dtype=param_dtype)
        x = Encoder(
            depth=self.depth,
            mlp_dim=self.mlp_dim,
            num_heads=self.num_heads,
            dropout_rate=self.dropout,
            remat=self.remat,
            remat_policy=self.remat_policy,
            scan=self.scan,
            dtype=dtype,
            param_dtype=param_dtype,
            attention_implementation=self.attention_implementation,
            mlp_activation=self.mlp_activation,
            name="Encoder_0",
        )(x, deterministic=not train)

        if self.pool_type != "map":
            x = pool_tokens(x, self.pool_type)
        else:
            x = MAPHead(num_heads=self.num_heads, mlp_dim=self.mlp_dim, dtype=dtype,
                        param_dtype=param_dtype,
                        attention_implementation=self.attention_implementation)(
                x, deterministic=not train)
        x = x.astype(jnp.float32)
        if self.num_classes:
            x = nn.Dense(
                self.num_classes,
                dtype=jnp.float32,
                param_dtype=param_dtype,
                kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                         ("embed", "classes")),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("classes",)),
                name="head",
            )(x)
        return x
