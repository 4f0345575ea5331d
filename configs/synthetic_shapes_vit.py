"""The main job: a tiny ViT on `synthetic_shapes`, sharded FSDP over 8 virtual CPU devices.

Not a paper setting: a demo that trains in a few minutes on a 2-core CPU and shows the whole
stack (sharded init, jitted step, evaluation, checkpoints, resume). Variants:
`default` (the demo) and `test` (smaller and shorter, for the test suite).
"""

import ml_collections

from configs import trainer_defaults

VARIANTS = ("default", "test")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the demo config; `arg` is one of VARIANTS (None = "default")."""
    arg = arg or "default"
    c = trainer_defaults.get_config()
    c.seed = 0
    c.total_steps = 600
    c.batch_size = 64
    c.log_every = 50
    c.eval_every = 200
    c.checkpoint_every = 200

    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"

    c.model = ml_collections.ConfigDict(dict(
        name="vit_classification", num_classes=12, patch_size=(4, 4), hidden_size=64,
        depth=4, mlp_dim=128, num_heads=4, posemb="learn", pool_type="gap", dtype="float32"))
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent", "label_smoothing": 0.0})
    c.optimizer.update(dict(name="adamw", lr=2e-3, weight_decay=1e-4, grad_clip_norm=1.0))
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 50})

    c.data.train = ml_collections.ConfigDict({"name": "synthetic_shapes", "split": "train"})
    c.data.eval = ml_collections.ConfigDict({"name": "synthetic_shapes", "split": "eval"})
    c.evaluators = ml_collections.ConfigDict({"classification": {"data": "eval"}})

    if arg == "test":
        c.total_steps = 10
        c.batch_size = 16
        c.schedule.warmup_steps = 2
        c.log_every = 5
        c.eval_every = 0
        c.checkpoint_every = 5
        c.model.hidden_size = 32
        c.model.depth = 2
        c.model.mlp_dim = 64
        c.model.num_heads = 2
        c.data.train.num_train = 512
        c.data.train.num_eval = 64
        c.data.eval.num_train = 512
        c.data.eval.num_eval = 64
        c.checkpoint.async_save = True
    return c
