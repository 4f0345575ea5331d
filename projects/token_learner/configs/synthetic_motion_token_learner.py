"""Tiny TokenLearner ViViT on `synthetic_motion` (8-frame 32x32 videos, 4 directions).

Not a paper setting. Tubelets 2x4x4 give 4 temporal slices of 8x8 tokens (256 tokens).
Variants:
  tiny        width 64, depth 4; 8 learned tokens per temporal slice after layer 2 (32
              tokens from there on).
  tiny_vivit  the same unfactorised ViViT without the TokenLearner (the baseline).
  test        width 32, depth 2, 4 tokens per slice after layer 1, 8 steps (test suite).
"""

import ml_collections

from configs import trainer_defaults
from projects.token_learner import recipes

VARIANTS = ("tiny", "tiny_vivit", "test")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns variant `arg` (one of VARIANTS; None = "tiny")."""
    arg = arg or "tiny"
    c = trainer_defaults.get_config()
    c.seed = 0
    c.total_steps = 400
    c.batch_size = 32
    c.log_every = 50
    c.eval_every = 200
    c.checkpoint_every = 200
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"

    c.model = recipes.model_group("Ti", 4, (2, 4, 4), tokenlearner_loc=2, num_tokens=8,
                                  depth=4)
    c.model.update(dict(hidden_size=64, mlp_dim=128, num_heads=4, dtype="float32"))
    if arg == "tiny_vivit":
        c.model.tokenlearner_loc = None
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent", "label_smoothing": 0.0})
    c.optimizer.update(dict(name="adamw", lr=2e-3, weight_decay=1e-4, grad_clip_norm=1.0))
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 40})

    c.data.train = ml_collections.ConfigDict({"name": "synthetic_motion", "split": "train"})
    c.data.eval = ml_collections.ConfigDict({"name": "synthetic_motion", "split": "eval"})
    c.evaluators = ml_collections.ConfigDict({"classification": {"data": "eval"}})
    c.model_input = ml_collections.ConfigDict({"video": "float32[8,32,32,3]"})

    if arg == "test":
        c.total_steps = 8
        c.batch_size = 16
        c.log_every = 4
        c.eval_every = 0
        c.checkpoint_every = 0
        c.schedule.warmup_steps = 2
        c.model.update(dict(hidden_size=32, mlp_dim=64, num_heads=2, depth=2, num_tokens=4))
        c.model.tokenlearner_loc = 1
        for split in (c.data.train, c.data.eval):
            split.update(dict(num_train=128, num_eval=32))
    return c
