"""Tiny TokenLearner ViT on `synthetic_shapes` (32x32 images, 12 classes), for CPU runs.

Not a paper setting. Variants:
  tiny      width 64, depth 4, patch 4 (64 tokens); 8 learned tokens after layer 2.
  tiny_vit  the same ViT without the TokenLearner (the baseline it is compared with).
  test      width 32, depth 2, 4 tokens after layer 1, 8 steps: the test suite's run.
  tiny_mean_teacher, test_mean_teacher
            tiny / test trained with the project's train step "token_learner.mean_teacher"
            (self-distillation from the EMA of the params, projects/token_learner/distill.py);
            the evaluators score the EMA params.
"""

import ml_collections

from projects.token_learner import recipes

VARIANTS = ("tiny", "tiny_vit", "test", "tiny_mean_teacher", "test_mean_teacher")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns variant `arg` (one of VARIANTS; None = "tiny")."""
    arg = arg or "tiny"
    base = arg.removesuffix("_mean_teacher")
    c = recipes.tiny_config(base, "synthetic_shapes", 12, (4, 4),
                            {"image": "float32[32,32,3]"}, total_steps=600, batch_size=64,
                            warmup_steps=50, test_examples=256)
    if arg != base:
        c.train_step = ml_collections.ConfigDict(
            {"name": "token_learner.mean_teacher", "weight": 1.0, "temperature": 2.0})
        c.ema.decay = 0.9 if base == "test" else 0.99
    return c
