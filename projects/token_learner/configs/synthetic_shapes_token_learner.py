"""Tiny TokenLearner ViT on `synthetic_shapes` (32x32 images, 12 classes), for CPU runs.

Not a paper setting. Variants:
  tiny      width 64, depth 4, patch 4 (64 tokens); 8 learned tokens after layer 2.
  tiny_vit  the same ViT without the TokenLearner (the baseline it is compared with).
  test      width 32, depth 2, 4 tokens after layer 1, 8 steps: the test suite's run.
"""

import ml_collections

from projects.token_learner import recipes

VARIANTS = ("tiny", "tiny_vit", "test")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns variant `arg` (one of VARIANTS; None = "tiny")."""
    return recipes.tiny_config(arg or "tiny", "synthetic_shapes", 12, (4, 4),
                               {"image": "float32[32,32,3]"}, total_steps=600, batch_size=64,
                               warmup_steps=50, test_examples=256)
