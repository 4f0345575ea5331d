"""Tiny SigLIP on `synthetic_captions` (synthetic_shapes images + captions): trains on CPU.

Not a paper setting: SigLIP's recipe (two towers trained from scratch with the pairwise
sigmoid loss in its chunked device-ring form, t' = log 10, b = -10, Adam-style optimizer
with b2 = 0.95) shrunk to width-64 towers, so that a 2-core CPU trains it in a few minutes
over 8 virtual devices (`--cpu_devices 8`): every step the ring passes the texts around all
8 batch shards. Zero-shot accuracy (12 classes "<colour> <shape>", prompts unseen in
training) and retrieval recall@k are measured on the held-out eval images.

Variants: `tiny` (the README run) and `test` (a few steps, for the test suite).
"""

import ml_collections

from configs import synthetic_image_text

VARIANTS = ("tiny", "test")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the tiny SigLIP config; `arg` is one of VARIANTS (None = "tiny")."""
    arg = arg or "tiny"
    if arg not in VARIANTS:
        raise ValueError(f"synthetic_siglip: unknown variant {arg!r}; use one of {VARIANTS}.")
    c = synthetic_image_text.get_config()
    c.model = ml_collections.ConfigDict(dict(
        name="image_text.two_tower",
        image=dict(patch_size=(4, 4), hidden_size=64, depth=2, mlp_dim=128, num_heads=2,
                   pool_type="map", posemb="learn"),
        text=dict(vocab_size=synthetic_image_text.BYTE_VOCAB_SIZE, hidden_size=64, depth=2,
                  mlp_dim=128, num_heads=2, pool_type="last"),
        out_dim=(None, 64),  # As SigLIP: no image head, a text head to the image width.
        temperature_init=10.0,
        bias_init=-10.0,
    ))
    c.loss = ml_collections.ConfigDict({"name": "image_text.sigmoid_pairwise", "chunked": True})
    c.optimizer.update(dict(name="adamw", lr=1e-3, weight_decay=1e-4, grad_clip_norm=1.0))
    c.optimizer.b2 = 0.95
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 100})
    if arg == "test":
        synthetic_image_text.shrink_for_tests(c)
    return c
