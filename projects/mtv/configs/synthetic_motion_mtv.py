"""Tiny MTV on `synthetic_motion` (8-frame 32x32 videos of a shape moving in one of 4
directions; only motion tells the class), against a single-view ViViT of similar FLOPs.

Not a paper setting. Two views with 4x4 spatial patches: a wide view (4-frame tubelets,
width 32, 4 layers) and a narrow view (2-frame tubelets, width 64, 4 layers), fused at
layers 1 and 3; a one-layer global encoder over the per-frame class tokens (width 96).
Variants (VARIANTS):
  tiny              cross-view attention (the paper's default fusion).
  tiny_bottleneck   4 bottleneck tokens per segment.
  tiny_mlp          MLP fusion.
  tiny_none         no lateral connections (the views meet in the global encoder only).
  tiny_vivit        the single-view baseline: a factorised-encoder ViViT (2x4x4 tubelets,
                    width 64, 6 spatial + 1 temporal layers), FLOPs close to `tiny`'s.
  test, test_bottleneck, test_mlp
                    width 16/32, 2 layers, 4 steps of batch 16, no evaluation (the
                    test suite).
"""

import ml_collections

from configs.synthetic_classification import tiny_classification_config

VARIANTS = ("tiny", "tiny_bottleneck", "tiny_mlp", "tiny_none", "tiny_vivit", "test",
            "test_bottleneck", "test_mlp")
FUSIONS = {"": "cross_view_attention", "_bottleneck": "bottleneck", "_mlp": "mlp",
           "_none": "none"}


def _view(hidden_size: int, depth: int, num_heads: int, tubelet: tuple) -> dict:
    return dict(hidden_size=hidden_size, depth=depth, mlp_dim=2 * hidden_size,
                num_heads=num_heads, tubelet=tubelet)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns variant `arg` (one of VARIANTS; None = "tiny")."""
    arg = arg or "tiny"
    if arg not in VARIANTS:
        raise ValueError(f"synthetic_motion_mtv: unknown variant {arg!r}; use one of {VARIANTS}.")
    c = tiny_classification_config("synthetic_motion", total_steps=400, batch_size=32, lr=2e-3,
                                   warmup_steps=40, model_input={"video": "float32[8,32,32,3]"})
    test = arg.startswith("test")
    width, depth = (16, 2) if test else (32, 4)
    if arg == "tiny_vivit":
        c.model = ml_collections.ConfigDict(dict(
            name="mtv.single_view_vivit", variant="factorised_encoder", num_classes=4,
            patch_size=(2, 4, 4), hidden_size=64, depth=6, mlp_dim=128, num_heads=4,
            temporal_depth=1, pool_type="token", dtype="float32"))
    else:
        c.model = ml_collections.ConfigDict(dict(
            name="mtv.classifier", num_classes=4,
            views=(_view(width, depth, 2, (4, 4, 4)), _view(2 * width, depth, 4, (2, 4, 4))),
            fusion=FUSIONS[arg.removeprefix("test").removeprefix("tiny")],
            fusion_layers=(0, 1) if test else (1, 3), bottleneck_tokens=4,
            use_query_config=True,
            global_encoder=dict(depth=1, mlp_dim=4 * width, num_heads=4, hidden_size=width,
                                merge_axis="channel", view_tiling="repeat"),
            classifier="token", dropout=0.0, attention_dropout=0.0, stochastic_depth=0.0,
            dtype="float32"))

    if test:
        c.total_steps = 4
        c.batch_size = 16
        c.log_every = 1
        c.eval_every = 0
        c.checkpoint_every = 0
        c.schedule.warmup_steps = 1
        c.evaluators = ml_collections.ConfigDict()  # The tests check training only.
        for split in (c.data.train, c.data.eval):
            split.update(dict(num_train=64, num_eval=16))
    return c
