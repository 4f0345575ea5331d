"""The main job: a tiny ViT on `synthetic_shapes`, sharded FSDP over 8 virtual CPU devices.

Not a paper setting: a demo that trains in a few minutes on a 2-core CPU and shows the whole
stack (sharded init, jitted step, evaluation, checkpoints, resume). Variants:
`default` (the demo) and `test` (smaller and shorter, for the test suite).
"""

import ml_collections

from configs.synthetic_classification import tiny_classification_config

VARIANTS = ("default", "test")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the demo config; `arg` is one of VARIANTS (None = "default")."""
    arg = arg or "default"
    c = tiny_classification_config("synthetic_shapes", total_steps=1500, batch_size=64, lr=3e-3,
                                   warmup_steps=50, eval_every=500)
    # 8x8 patches (16 tokens) make a step cheap enough for 1500 steps in a few CPU minutes, and
    # 30k training images keep the model from memorising them (about 3 epochs).
    c.model = ml_collections.ConfigDict(dict(
        name="vit_classification", num_classes=12, patch_size=(8, 8), hidden_size=64,
        depth=4, mlp_dim=128, num_heads=4, posemb="learn", pool_type="gap", dtype="float32"))
    c.data.train.num_train = 30000
    c.data.eval.num_train = 30000
    c.log_every = 100  # 15 progress lines: the whole run prints about 33.
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999

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
        c.model.patch_size = (4, 4)
        c.optimizer.lr = 2e-3
        c.data.train.num_train = 512
        c.data.train.num_eval = 64
        c.data.eval.num_train = 512
        c.data.eval.num_eval = 64
        c.checkpoint.async_save = True
    return c
