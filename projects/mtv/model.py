"""Multiview Transformer for video (MTV; Yan et al., CVPR 2022), built from framework.layers.

A clip is tokenised once per view, each view with its own tubelet size (the "wide" views
use long tubelets, so few tokens, and a small encoder; the "narrow" views short tubelets,
many tokens and a large encoder). Every frame of a view's token grid gets its own class
token. As in Scenic's MTV, the views' token sequences are cut into S = min_i t_i temporal
segments (t_i = frames // tubelet_t of view i) and every encoder attends within a segment,
so a single view reduces to a factorised (per-frame spatial, then temporal) ViViT. Lateral
connections between neighbouring views at `fusion_layers` exchange information:

- 'cross_view_attention' (the paper's default): before the layer's blocks, view i's
  tokens attend (queries) to view i + 1's (keys / values, projected to view i's width),
  through a residual CrossAttentionBlock whose output projection starts at zero. All pairs
  read the tokens as they were before the fusion layer.
- 'bottleneck': `bottleneck_tokens` learned tokens per segment are appended to view i's
  tokens for its layer block and passed on, linearly projected when widths differ, from the
  narrowest view (most tokens) to the widest.
- 'mlp': a residual MLP (hidden width = view i's mlp_dim) on the channel concatenation of
  view i's tokens and view i + 1's tokens averaged over the frames that fall into each of
  view i's frames (views i and i + 1 need the same spatial patch grid).
- 'none': independent encoders (late fusion in the global encoder only).

A global encoder (a transformer with its own class token and learned position embedding)
runs over the per-frame class tokens of all views, merged along channels (the paper's
default; each view's frames repeated in time to the longest view's count, or with
`view_tiling='tile'` its sequence tiled, as Scenic's MTV does) or, with merge_axis 'time',
projected to its `hidden_size` and concatenated in time. Its class token feeds the
`output_projection` head.

Parameter tree (Scenic's MTV names where they exist): `embedding_view{i}` (tubelet conv),
`cls_view{i}` (1, t_i, 1, D_i), `MultiviewEncoder/posembed_view{i}` (1, L_i, D_i) with L_i the
tokens of one segment (class tokens included), `MultiviewEncoder/encoderblock_{l}_view{i}`
(framework EncoderBlock: big_vision's ViT block names, so an image ViT's
`Transformer/encoderblock_{l}` maps onto it), `MultiviewEncoder/cross_attention_{l}_view{i}`,
`MultiviewEncoder/bottleneck` and `bottleneck_linear_{l}_view{i}`,
`MultiviewEncoder/mlp_fusion_{l}_view{i}`, `global_encoder_linear_view{i}` (time merge),
`cls_global`, `global_posembed`, `global_encoder/...` (framework Encoder) and
`output_projection`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from framework import registry
from framework.layers import (
    Encoder,
    MlpBlock,
    PatchEmbedding,
    StochasticDepth,
    block_class,
    position_embedding,
)
from framework.layers.normalization import layer_norm
from framework.layers.stochastic_depth import linear_drop_path_rate
from projects.mtv.cross_attention import CrossAttentionBlock
from projects.mtv.views import ViewSpec, view_specs

FUSION_TYPES = ("cross_view_attention", "bottleneck", "mlp", "none")
MERGE_AXES = ("channel", "time")
VIEW_TILINGS = ("repeat", "tile")
CLASSIFIERS = ("token", "gap")


def _dense(features: int, dtype: Any, param_dtype: Any, name: str, zero: bool = False,
           axes: tuple[str, str] = ("embed", "mlp")) -> nn.Dense:
    """A Dense with logically partitioned params (xavier or zero kernel, zero bias)."""
    init = nn.initializers.zeros if zero else nn.initializers.xavier_uniform()
    return nn.Dense(features, dtype=dtype, param_dtype=param_dtype, name=name,
                    kernel_init=nn.with_logical_partitioning(init, axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]))


class MlpFusion(nn.Module):
    """View i's tokens + Mlp([LN(x_i), LN(frame-averaged x_{i+1})]) (MTV's MLP fusion).

    Submodules `LayerNorm_0` (x_i), `LayerNorm_1` (x_{i+1}), `MlpBlock_0` (in: D_i + D_{i+1},
    hidden: `mlp_dim`, out: D_i).
    """

    mlp_dim: int
    dropout_rate: float = 0.0
    drop_path_rate: float = 0.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, other: jax.Array, tokens_per_frame: int, *,
                 deterministic: bool) -> jax.Array:
        """Takes x (B, f * n, D) and other (B, f * r * n, D') of the same segment (n tokens
        per frame, view i + 1 having r times more frames); returns (B, f * n, D)."""
        batch, length, width = x.shape
        frames = length // tokens_per_frame
        ratio = other.shape[1] // length
        if ratio * length != other.shape[1]:
            raise ValueError(
                f"MLP fusion needs neighbouring views with the same spatial token grid and "
                f"nested tubelets; got segments of {length} and {other.shape[1]} tokens. Use "
                "equal spatial patch sizes, or fusion='cross_view_attention'.")
        other = layer_norm(self.dtype, self.param_dtype)(other)
        other = other.reshape(batch, frames, ratio, tokens_per_frame, -1).mean(axis=2)
        y = jnp.concatenate([layer_norm(self.dtype, self.param_dtype)(x),
                             other.reshape(batch, length, -1)], axis=-1)
        y = MlpBlock(mlp_dim=self.mlp_dim, out_dim=width, dropout_rate=self.dropout_rate,
                     dtype=self.dtype, param_dtype=self.param_dtype)(
            y, deterministic=deterministic)
        y = nn.Dropout(rate=self.dropout_rate)(y, deterministic=deterministic)
        return x + StochasticDepth(self.drop_path_rate)(y, deterministic=deterministic)


class MultiviewEncoder(nn.Module):
    """The views' encoders with lateral connections at `fusion_layers` (module docstring).

    Attributes:
      views: the ViewSpecs, widest view (largest tubelet) first.
      fusion: one of FUSION_TYPES; fusion_layers: 0-based layer indices it acts at.
      bottleneck_tokens: learned tokens per segment for fusion 'bottleneck'.
      use_query_config: cross-view attention in the querying view's width and heads (True,
        Scenic's released configs), or in the attended view's (False, the setting that
        matches the paper's cost table; projects/mtv/recipes.py).
      dropout_rate, attention_dropout_rate: see EncoderBlock.
      stochastic_depth: largest drop-path rate; view i's layer l drops with
        stochastic_depth * l / (depth_i - 1).
      remat, remat_policy: recompute each view block's activations in the backward pass
        (see framework.layers.Encoder); the parameters are the same.
      dtype / param_dtype / attention_implementation: passed to every block.
    """

    views: Sequence[ViewSpec]
    fusion: str = "cross_view_attention"
    fusion_layers: Sequence[int] = ()
    bottleneck_tokens: int = 4
    use_query_config: bool = True
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    stochastic_depth: float = 0.0
    remat: bool = False
    remat_policy: str | None = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    attention_implementation: str | None = None

    def rate(self, layer: int, view: int) -> float:
        """Returns the stochastic depth rate of `view`'s layer `layer`."""
        return linear_drop_path_rate(self.stochastic_depth, layer, self.views[view].depth)

    @nn.compact
    def __call__(self, xs: Sequence[jax.Array], tokens_per_frame: Sequence[int], *,
                 deterministic: bool) -> list[jax.Array]:
        """Takes one (B, S, L_i, D_i) array per view (S segments of L_i tokens) and the
        tokens per frame of each view; returns the encoded tokens, same shapes."""
        batch, segments = xs[0].shape[:2]
        xs = [x.reshape(batch * segments, *x.shape[2:]) for x in xs]
        xs = [x + position_embedding(self, "learn", x.shape[1:2], x.shape[-1],
                                     name=f"posembed_view{i}", dtype=self.dtype,
                                     param_dtype=self.param_dtype)
              for i, x in enumerate(xs)]
        fusion_layers = set(self.fusion_layers) if self.fusion != "none" else set()
        bottleneck = None
        if self.fusion == "bottleneck":
            bottleneck = self.param(
                "bottleneck",
                nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                             (None, None, None, "embed")),
                (1, segments, self.bottleneck_tokens, self.views[-1].hidden_size),
                self.param_dtype)
            bottleneck = jnp.broadcast_to(bottleneck.astype(self.dtype), (
                batch, *bottleneck.shape[1:])).reshape(batch * segments, *bottleneck.shape[2:])

        block_cls = block_class(self.remat, self.remat_policy)
        for layer in range(max(v.depth for v in self.views)):
            fuse = layer in fusion_layers
            if fuse and self.fusion == "cross_view_attention":
                xs = self._cross_view_attention(xs, layer, deterministic)
            elif fuse and self.fusion == "mlp":
                xs = self._mlp_fusion(xs, tokens_per_frame, layer, deterministic)
            # Bottleneck tokens travel from the narrowest view (most tokens) to the widest.
            order = range(len(xs) - 1, -1, -1) if self.fusion == "bottleneck" else range(len(xs))
            for i in order:
                if layer >= self.views[i].depth:
                    continue
                x = xs[i]
                if fuse and bottleneck is not None:
                    if bottleneck.shape[-1] != x.shape[-1]:
                        bottleneck = _dense(x.shape[-1], self.dtype, self.param_dtype,
                                            f"bottleneck_linear_{layer}_view{i}")(bottleneck)
                    x = jnp.concatenate([x, bottleneck], axis=1)
                x, _ = block_cls(
                    mlp_dim=self.views[i].mlp_dim, num_heads=self.views[i].num_heads,
                    dropout_rate=self.dropout_rate,
                    attention_dropout_rate=self.attention_dropout_rate,
                    dtype=self.dtype, param_dtype=self.param_dtype,
                    attention_implementation=self.attention_implementation,
                    name=f"encoderblock_{layer}_view{i}",
                )(x, self.rate(layer, i), None, deterministic)
                if fuse and bottleneck is not None:
                    x, bottleneck = x[:, :-self.bottleneck_tokens], x[:, -self.bottleneck_tokens:]
                xs[i] = x
        return [x.reshape(batch, segments, *x.shape[1:]) for x in xs]

    def _cross_view_attention(self, xs: list[jax.Array], layer: int,
                              deterministic: bool) -> list[jax.Array]:
        """View i attends to view i + 1 (both as they were before this layer), in view i's
        width and heads, or with `use_query_config=False` in view i + 1's."""
        out = list(xs)
        for i in range(len(xs) - 1):
            config = self.views[i if self.use_query_config else i + 1]
            out[i] = CrossAttentionBlock(
                num_heads=config.num_heads, qkv_features=config.hidden_size,
                dropout_rate=self.dropout_rate,
                attention_dropout_rate=self.attention_dropout_rate,
                drop_path_rate=self.rate(layer, i), dtype=self.dtype,
                param_dtype=self.param_dtype,
                attention_implementation=self.attention_implementation,
                name=f"cross_attention_{layer}_view{i}",
            )(xs[i], xs[i + 1], deterministic=deterministic)
        return out

    def _mlp_fusion(self, xs: list[jax.Array], tokens_per_frame: Sequence[int], layer: int,
                    deterministic: bool) -> list[jax.Array]:
        """View i gets an MLP of its tokens and view i + 1's (as they were before)."""
        out = list(xs)
        for i in range(len(xs) - 1):
            if tokens_per_frame[i] != tokens_per_frame[i + 1]:
                raise ValueError(
                    f"fusion='mlp' needs views {i} and {i + 1} to have the same tokens per "
                    f"frame; they have {tokens_per_frame[i]} and {tokens_per_frame[i + 1]} "
                    "(use equal spatial patch sizes, or fusion='cross_view_attention').")
            out[i] = MlpFusion(
                mlp_dim=self.views[i].mlp_dim, dropout_rate=self.dropout_rate,
                drop_path_rate=self.rate(layer, i), dtype=self.dtype,
                param_dtype=self.param_dtype, name=f"mlp_fusion_{layer}_view{i}",
            )(xs[i], xs[i + 1], tokens_per_frame[i], deterministic=deterministic)
        return out


@registry.MODELS.register("mtv.classifier", formerly=("mtv_classification",))
class MTV(nn.Module):
    """Registry model "mtv.classifier": the Multiview Transformer classifier (module
    docstring), reading batch["video"].

    Attributes:
      num_classes: head width.
      views: view dicts (hidden_size, depth, mlp_dim, num_heads, tubelet (t, h, w)), widest
        view (largest temporal tubelet) first; `projects.mtv.views.parse_views("B/2+S/4+Ti/8")`
        builds them.
      fusion: one of FUSION_TYPES; fusion_layers: layer indices (0-based) it acts at;
        bottleneck_tokens: tokens per segment for 'bottleneck'.
      use_query_config: cross-view attention in the querying (wider-tubelet) view's width
        and heads (True, Scenic's released configs) or in the attended view's (False).
      global_encoder: {depth, mlp_dim, num_heads, hidden_size (used by merge_axis 'time'),
        merge_axis ('channel' or 'time'), view_tiling ('repeat': a wide view's frame is
        repeated over the narrow frames it covers, so the merged frames are aligned in time;
        'tile': the wide view's sequence is tiled, as Scenic's MTV does; channel merge only)}.
      classifier: 'token' (class tokens) or 'gap' (average pooling) for the per-frame view
        features and the global encoder's output.
      dropout, attention_dropout, stochastic_depth: regularisation of every encoder.
      remat, remat_policy: recompute block activations in the backward pass (views and
        global encoder; less memory, same parameters).
      dtype / param_dtype: compute and storage dtypes (names or jnp dtypes); logits float32.
      attention_implementation: passed to jax.nn.dot_product_attention.
    """

    num_classes: int
    views: Sequence[Mapping[str, Any]]
    fusion: str = "cross_view_attention"
    fusion_layers: Sequence[int] = (5, 11)
    bottleneck_tokens: int = 4
    use_query_config: bool = True
    global_encoder: Mapping[str, Any] | None = None
    classifier: str = "token"
    dropout: float = 0.0
    attention_dropout: float = 0.0
    stochastic_depth: float = 0.0
    remat: bool = False
    remat_policy: str | None = None
    dtype: Any = "float32"
    param_dtype: Any = "float32"
    attention_implementation: str | None = None

    def check(self, views: Sequence[ViewSpec]) -> dict[str, Any]:
        """Validates the config fields; returns the global encoder kwargs with defaults."""
        if self.fusion not in FUSION_TYPES:
            raise ValueError(f"config.model.fusion={self.fusion!r}: use one of {FUSION_TYPES}.")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"config.model.classifier={self.classifier!r}: use one of "
                             f"{CLASSIFIERS}.")
        depth = max(v.depth for v in views)
        bad = [f for f in self.fusion_layers if not 0 <= int(f) < depth]
        if self.fusion != "none" and (bad or not self.fusion_layers):
            raise ValueError(f"config.model.fusion_layers={tuple(self.fusion_layers)}: need one "
                             f"or more layer indices in [0, {depth}) for fusion={self.fusion!r}.")
        if self.fusion != "none" and len(views) < 2:
            raise ValueError(f"config.model.fusion={self.fusion!r} needs two or more views; "
                             "use fusion='none' for a single view.")
        glob = dict(depth=12, mlp_dim=3072, num_heads=8, hidden_size=768, merge_axis="channel",
                    view_tiling="repeat")
        unknown = set(self.global_encoder or {}) - set(glob)
        glob.update(dict(self.global_encoder or {}))
        if (unknown or glob["merge_axis"] not in MERGE_AXES
                or glob["view_tiling"] not in VIEW_TILINGS):
            raise ValueError(f"config.model.global_encoder={glob}: keys depth, mlp_dim, "
                             f"num_heads, hidden_size, merge_axis (one of {MERGE_AXES}), "
                             f"view_tiling (one of {VIEW_TILINGS}).")
        return glob

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> jax.Array:
        """Takes batch["video"] (B, T, H, W, C); returns logits (B, num_classes) float32."""
        video = batch["video"]
        views = view_specs(self.views)
        glob = self.check(views)
        dtype, param_dtype = jnp.dtype(self.dtype), jnp.dtype(self.param_dtype)
        if video.ndim != 5:
            raise ValueError(f"MTV takes video (B, T, H, W, C); got shape {video.shape}.")
        uneven = [v.tubelet for v in views if video.shape[1] % v.tubelet[0]]
        if uneven:
            raise ValueError(f"MTV: the tubelet lengths of {uneven} do not divide the clip's "
                             f"{video.shape[1]} frames; pick tubelet lengths that do.")

        tokens, per_frame = [], []
        for i, view in enumerate(views):
            x = PatchEmbedding(view.hidden_size, view.tubelet, dtype=dtype,
                               param_dtype=param_dtype, name=f"embedding_view{i}")(video)
            batch_size, frames, h, w, width = x.shape
            x = x.reshape(batch_size, frames, h * w, width)
            if self.classifier == "token":
                cls = self.param(f"cls_view{i}", nn.with_logical_partitioning(
                    nn.initializers.zeros, (None, None, None, "embed")),
                    (1, frames, 1, width), param_dtype)
                x = jnp.concatenate([jnp.broadcast_to(
                    cls.astype(dtype), (batch_size, frames, 1, width)), x], axis=2)
            tokens.append(x)
            per_frame.append(x.shape[2])
        segments = min(x.shape[1] for x in tokens)
        if any(x.shape[1] % segments for x in tokens):
            raise ValueError(
                f"MTV: the views' temporal token counts {[x.shape[1] for x in tokens]} must "
                f"all be multiples of the smallest ({segments}); pick tubelet lengths that "
                "divide each other and the clip length.")
        tokens = [x.reshape(x.shape[0], segments, -1, x.shape[-1]) for x in tokens]

        tokens = MultiviewEncoder(
            views=views, fusion=self.fusion, fusion_layers=tuple(self.fusion_layers),
            bottleneck_tokens=self.bottleneck_tokens,
            use_query_config=self.use_query_config, dropout_rate=self.dropout,
            attention_dropout_rate=self.attention_dropout,
            stochastic_depth=self.stochastic_depth, remat=self.remat,
            remat_policy=self.remat_policy, dtype=dtype, param_dtype=param_dtype,
            attention_implementation=self.attention_implementation, name="MultiviewEncoder",
        )(tokens, per_frame, deterministic=not train)

        x = self._merge_views(tokens, per_frame, glob, dtype, param_dtype)
        x = self._global_encode(x, glob, dtype, param_dtype, train)
        return _dense(self.num_classes, jnp.float32, param_dtype, "output_projection",
                      zero=True, axes=("embed", "classes"))(x.astype(jnp.float32))

    def _merge_views(self, tokens: Sequence[jax.Array], per_frame: Sequence[int],
                     glob: Mapping[str, Any], dtype: Any, param_dtype: Any) -> jax.Array:
        """Per-frame features of every view, merged: (B, T', D') for the global encoder."""
        feats = []
        for x, n in zip(tokens, per_frame):
            x = x.reshape(x.shape[0], -1, n, x.shape[-1])  # (B, t_i, n, D_i)
            feats.append(x[:, :, 0] if self.classifier == "token" else x.mean(axis=2))
        if glob["merge_axis"] == "channel":
            longest = max(f.shape[1] for f in feats)
            if glob["view_tiling"] == "tile":  # [f0, f1, f0, f1, ...], as Scenic's MTV.
                return jnp.concatenate([jnp.tile(f, (1, longest // f.shape[1], 1))
                                        for f in feats], axis=-1)
            # Each frame of a wide view is repeated over the narrow frames it covers.
            return jnp.concatenate([jnp.repeat(f, longest // f.shape[1], axis=1)
                                    for f in feats], axis=-1)
        return jnp.concatenate([
            _dense(glob["hidden_size"], dtype, param_dtype, f"global_encoder_linear_view{i}",
                   axes=("embed", "embed"))(f)
            for i, f in enumerate(feats)], axis=1)

    def _global_encode(self, x: jax.Array, glob: Mapping[str, Any], dtype: Any,
                       param_dtype: Any, train: bool) -> jax.Array:
        """Global encoder over x (B, T', D'); returns the pooled (B, D')."""
        batch, _, width = x.shape
        if self.classifier == "token":
            cls = self.param("cls_global", nn.with_logical_partitioning(
                nn.initializers.zeros, (None, None, "embed")), (1, 1, width), param_dtype)
            x = jnp.concatenate([jnp.broadcast_to(cls.astype(dtype), (batch, 1, width)),
                                 x.astype(dtype)], axis=1)
        x = x + position_embedding(self, "learn", x.shape[1:2], width, name="global_posembed",
                                   dtype=dtype, param_dtype=param_dtype)
        x = nn.Dropout(rate=self.dropout)(x, deterministic=not train)
        x = Encoder(
            depth=glob["depth"], mlp_dim=glob["mlp_dim"], num_heads=glob["num_heads"],
            dropout_rate=self.dropout, attention_dropout_rate=self.attention_dropout,
            stochastic_depth=self.stochastic_depth, remat=self.remat,
            remat_policy=self.remat_policy, dtype=dtype, param_dtype=param_dtype,
            attention_implementation=self.attention_implementation, name="global_encoder",
        )(x, deterministic=not train)
        return x[:, 0] if self.classifier == "token" else x.mean(axis=1)

