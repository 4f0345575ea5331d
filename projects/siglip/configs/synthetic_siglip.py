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

from configs import trainer_defaults

VARIANTS = ("tiny", "test")
TEXT_LENGTH = 56


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the tiny SigLIP config; `arg` is one of VARIANTS (None = "tiny")."""
    arg = arg or "tiny"
    if arg not in VARIANTS:
        raise ValueError(f"synthetic_siglip: unknown variant {arg!r}; use one of {VARIANTS}.")
    c = trainer_defaults.get_config()
    c.total_steps = 1000
    c.batch_size = 128
    c.log_every = 100
    c.eval_every = 500
    c.checkpoint_every = 500
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.sharding.rules = "dp"

    c.model = ml_collections.ConfigDict(dict(
        name="two_tower",
        image=dict(patch_size=(4, 4), hidden_size=64, depth=2, mlp_dim=128, num_heads=2,
                   pool_type="map", posemb="learn"),
        text=dict(vocab_size=259, hidden_size=64, depth=2, mlp_dim=128, num_heads=2,
                  pool_type="last"),
        out_dim=(None, 64),  # As SigLIP: no image head, a text head to the image width.
        temperature_init=10.0,
        bias_init=-10.0,
    ))
    c.model_input = ml_collections.ConfigDict(
        {"image": "float32[32,32,3]", "text": f"int32[{TEXT_LENGTH}]"})
    c.loss = ml_collections.ConfigDict({"name": "sigmoid_pairwise", "chunked": True})
    c.optimizer.update(dict(name="adamw", lr=1e-3, weight_decay=1e-4, grad_clip_norm=1.0))
    c.optimizer.b2 = 0.95
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 100})

    data = dict(name="synthetic_captions", max_len=TEXT_LENGTH, tokenizer="bytes")
    c.data.train = ml_collections.ConfigDict({**data, "split": "train"})
    c.data.eval = ml_collections.ConfigDict({**data, "split": "eval"})
    c.evaluators = ml_collections.ConfigDict({
        "zero_shot": {"data": "eval", "tokenizer": "bytes"},
        "retrieval": {"data": "eval"},
    })
    c.reference = ml_collections.ConfigDict({
        "source": "none (a CPU sanity run); chance: zero-shot top-1 1/12 = 0.083, "
                  "recall@1 1/1000 = 0.001"})

    if arg == "test":
        c.total_steps = 6
        c.batch_size = 32
        c.log_every = 3
        c.eval_every = 0
        c.checkpoint_every = 0
        c.checkpoint.async_save = False
        c.schedule.warmup_steps = 2
        c.model.image.update(dict(hidden_size=16, mlp_dim=32, depth=1))
        c.model.text.update(dict(hidden_size=16, mlp_dim=32, depth=1))
        c.model.out_dim = (None, 16)
        for split in (c.data.train, c.data.eval):
            split.num_train = 512
            split.num_eval = 64
    return c
