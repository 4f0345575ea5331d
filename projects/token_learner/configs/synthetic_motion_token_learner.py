"""Tiny TokenLearner ViViT on `synthetic_motion` (8-frame 32x32 videos, 4 directions).

Not a paper setting. Tubelets 2x4x4 give 4 temporal slices of 8x8 tokens (256 tokens).
Variants:
  tiny        width 64, depth 4; 8 learned tokens per temporal slice after layer 2 (32
              tokens from there on).
  tiny_vivit  the same unfactorised ViViT without the TokenLearner (the baseline).
  test        width 32, depth 2, 4 tokens per slice after layer 1, 8 steps (test suite).
"""

import ml_collections

from projects.token_learner import recipes

VARIANTS = ("tiny", "tiny_vivit", "test")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns variant `arg` (one of VARIANTS; None = "tiny")."""
    return recipes.tiny_config(arg or "tiny", "synthetic_motion", 4, (2, 4, 4),
                               {"video": "float32[8,32,32,3]"}, total_steps=400, batch_size=32,
                               warmup_steps=40, test_examples=128)
