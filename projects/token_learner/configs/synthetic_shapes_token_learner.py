"""Tiny TokenLearner ViT on `synthetic_shapes` (32x32 images, 12 classes), for CPU runs.

Not a paper setting. Variants:
  tiny      width 64, depth 4, patch 4 (64 tokens); 8 learned tokens after layer 2.
  tiny_vit  the same ViT without the TokenLearner (the baseline it is compared with).
  test      width 32, depth 2, 4 tokens after layer 1, 8 steps: the test suite's run.
"""

import ml_collections

from configs import trainer_defaults
from projects.token_learner import recipes

VARIANTS = ("tiny", "tiny_vit", "test")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns variant `arg` (one of VARIANTS; None = "tiny")."""
    arg = arg or "tiny"
    c = trainer_defaults.get_config()
    c.seed = 0
    c.total_steps = 600
    c.batch_size = 64
    c.log_every = 50
    c.eval_every = 300
    c.checkpoint_every = 300
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"

    c.model = recipes.model_group("Ti", 12, (4, 4), tokenlearner_loc=2, num_tokens=8, depth=4)
    c.model.update(dict(hidden_size=64, mlp_dim=128, num_heads=4, dtype="float32"))
    if arg == "tiny_vit":
        c.model.tokenlearner_loc = None
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent", "label_smoothing": 0.0})
    c.optimizer.update(dict(name="adamw", lr=2e-3, weight_decay=1e-4, grad_clip_norm=1.0))
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 50})

    c.data.train = ml_collections.ConfigDict({"name": "synthetic_shapes", "split": "train"})
    c.data.eval = ml_collections.ConfigDict({"name": "synthetic_shapes", "split": "eval"})
    c.evaluators = ml_collections.ConfigDict({"classification": {"data": "eval"}})
    c.model_input = ml_collections.ConfigDict({"image": "float32[32,32,3]"})

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
            split.update(dict(num_train=256, num_eval=64))
    return c
