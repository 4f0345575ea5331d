"""Scenic's ViViT parameter names -> ours (projects/vivit/backbone.py), for checkpoints of
Scenic's `projects/vivit` models 1-4 (its model zoo, or a run of its trainer).

Scenic's tree differs from ours in four places; the blocks themselves (`encoderblock_{i}`
with LayerNorm_0, MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0; model 3's
LayerNorm_space / _time / _mlp, MultiHeadDotProductAttention_space / _time, MlpBlock),
`encoder_norm`, `embedding` and `pre_logits` have the same names and shapes:

- the position embeddings sit in the encoder: `Transformer/posembed_input/pos_embedding`
  (models 1, 3, 4), `SpatialTransformer/...` and `TemporalTransformer/...` (model 2) ->
  our top-level `pos_embedding` and `temporal_pos_embedding`;
- with a class token, Scenic prepends it before adding the position embedding, so the
  embedding has one more row, which belongs to the class token. That row is a constant
  added to a constant, so it is folded into the class token: our `cls` = Scenic's class
  token + row 0, our `pos_embedding` = rows 1: (the same function, exactly);
- model 2's class tokens are `cls_SpatialTransformer` / `cls_TemporalTransformer` -> our
  `cls` / `temporal_cls`;
- the classifier is `output_projection` -> our `head`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

POSEMB = "posembed_input/pos_embedding"
# Scenic encoder -> (our position-embedding name, Scenic class token, our class token).
_ENCODERS = {
    "Transformer": ("pos_embedding", "cls", "cls"),
    "SpatialTransformer": ("pos_embedding", "cls_SpatialTransformer", "cls"),
    "TemporalTransformer": ("temporal_pos_embedding", "cls_TemporalTransformer", "temporal_cls"),
}


def is_scenic_vivit(flat: Mapping[str, np.ndarray]) -> bool:
    """True when flat params {"a/b": array} are in Scenic's ViViT layout (module docstring)."""
    return any(k.endswith("/" + POSEMB) or k.startswith(("output_projection/", "cls_"))
               for k in flat)


def from_scenic(flat: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, tuple]]:
    """Renames Scenic ViViT flat params to ours (module docstring).

    Returns (params in our names, {our key: the Scenic keys it was made from}).
    """
    out: dict[str, np.ndarray] = {}
    origin: dict[str, tuple] = {}
    taken: set[str] = set()
    for encoder, (posemb_name, their_cls, our_cls) in _ENCODERS.items():
        key = f"{encoder}/{POSEMB}"
        if key not in flat:
            continue
        posemb = np.asarray(flat[key])
        taken.add(key)
        if their_cls in flat:
            cls = np.asarray(flat[their_cls])
            out[our_cls] = (cls + posemb[:, :1]).astype(cls.dtype)
            origin[our_cls] = (their_cls, key)
            taken.add(their_cls)
            posemb = posemb[:, 1:]
        out[posemb_name], origin[posemb_name] = posemb, (key,)
    for key, value in flat.items():
        if key in taken:
            continue
        ours = "head/" + key.split("/", 1)[1] if key.startswith("output_projection/") else key
        out[ours], origin[ours] = np.asarray(value), (key,)
    return out, origin
