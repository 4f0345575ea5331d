"""The registered ViViT classifier: projects.vivit.backbone.ViViT reading a batch dict."""

from __future__ import annotations

import jax

from framework import registry
from projects.vivit.backbone import ViViT


@registry.MODELS.register("vivit.classifier", formerly=("vivit_classification",))
class ViViTClassifier(ViViT):
    """Registry model "vivit.classifier": ViViT on `batch["video"]` (B, T, H, W, C).

    Same fields and parameter tree as projects.vivit.backbone.ViViT. Returns logits
    (B, num_classes) float32. Epic-Kitchens uses it with num_classes = verbs + nouns: the
    verb and noun heads are the two column blocks of `head` (as Scenic's `class_splits`),
    split by the "vivit.epic_kitchens_xent" loss and the evaluator. A single-frame baseline
    is the same model with num_sampled_frames=1 and a 1-frame tubelet.
    """

    def __call__(self, batch: dict[str, jax.Array], *, train: bool = False) -> jax.Array:
        """Takes batch with "video" (B, T, H, W, C); returns logits (B, num_classes)."""
        return super().__call__(batch["video"], train=train)
