"""The single-view baseline MTV is measured against: a ViViT (projects.vivit.backbone)
registered as "mtv.single_view_vivit", reading batch["video"].

Not an MTV part: it lets an MTV config train the paper's single-view comparison point with
the same trainer, data and evaluator (see configs/synthetic_motion_mtv.py, 'tiny_vivit').
"""

from __future__ import annotations

from collections.abc import Mapping

import jax

from framework import registry
from projects.vivit.backbone import ViViT


@registry.MODELS.register("mtv.single_view_vivit", formerly=("mtv_single_view_vivit",))
class SingleViewViViT(ViViT):
    """ViViT (any `variant`; same fields and parameter tree) called with a batch dict."""

    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> jax.Array:
        """Takes batch["video"] (B, T, H, W, C); returns logits (B, num_classes) float32."""
        return super().__call__(batch["video"], train=train)
