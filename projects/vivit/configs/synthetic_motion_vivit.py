"""Tiny ViViT on `synthetic_motion` (8-frame 32x32 clips; the class is the direction of
motion, so no single frame tells it): trains in a few minutes on a 2-core CPU.

Not a paper setting: the demo that temporal modelling matters. Variants (VARIANTS):
  tiny        factorised encoder (model 2): 2x4x4 tubelets, width 32, 2 spatial + 1 temporal
              layers, class tokens.
  tiny-frame  the single-frame baseline: the same backbone on one frame (1x4x4 patches,
              num_sampled_frames=1), i.e. an image ViT of the same size.
  tiny-ST, tiny-FSA, tiny-FDP
              models 1, 3 and 4 at the same size.
  test        `tiny`, smaller and 6 steps (for the test suite).
"""

import ml_collections

from configs.synthetic_classification import tiny_classification_config

VARIANTS = ("tiny", "tiny-frame", "tiny-ST", "tiny-FSA", "tiny-FDP", "test")

MODELS = {"tiny": ("factorised_encoder", "token"), "tiny-frame": ("factorised_encoder", "token"),
          "tiny-ST": ("spatio_temporal", "token"), "tiny-FSA": ("factorised_self_attention", "gap"),
          "tiny-FDP": ("factorised_dot_product", "gap"), "test": ("factorised_encoder", "token")}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the tiny config of `arg` (one of VARIANTS; None = "tiny")."""
    arg = arg or "tiny"
    variant, pool = MODELS[arg]
    c = tiny_classification_config("synthetic_motion", total_steps=400, batch_size=32, lr=1e-3,
                                   warmup_steps=40, sharding="dp",
                                   model_input={"video": "float32[8,32,32,3]"})
    c.model = ml_collections.ConfigDict(dict(
        name="vivit.classifier", variant=variant, num_classes=4, patch_size=(2, 4, 4),
        num_sampled_frames=None, hidden_size=32, depth=2, mlp_dim=64, num_heads=2,
        temporal_depth=1, pool_type=pool, dtype="float32"))
    if arg == "tiny-frame":
        c.model.patch_size = (1, 4, 4)
        c.model.num_sampled_frames = 1

    if arg == "test":
        c.total_steps = 4
        c.batch_size = 16
        c.log_every = 2
        c.eval_every = 0
        c.checkpoint_every = 0
        c.schedule.warmup_steps = 2
        c.model.hidden_size = 16
        c.model.mlp_dim = 32
        c.model.depth = 1
        c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
        c.sharding.rules = "fsdp"
        for split in ("train", "eval"):
            c.data[split].num_train = 128
            c.data[split].num_eval = 64
    return c
