"""Tiny LiT on `synthetic_captions`: a locked image tower pretrained on labelled images.

Not a paper setting: LiT's recipe shrunk to CPU size. The image tower is the demo ViT of
configs/synthetic_shapes_vit.py (width 64, depth 4, patch 4, 'gap' pooling), pretrained by
supervised classification on synthetic_shapes and loaded with `config.init_from` into
`img/` (its classification head is not used: the image embedding is the pooled feature, as
LiT's best B/16 models have no image head). The text tower (width 64, depth 2, byte
tokens) is trained from scratch with the softmax contrastive loss. First train the tower:

    python -m tools.train --config configs/synthetic_shapes_vit.py --workdir \
        workdirs/shapes_vit --cpu_devices 8

Variants (the paper's three settings, Sec. 3): `tiny` ("Lu": locked pretrained image tower),
`tiny_unlocked` ("Uu": pretrained, fine-tuned), `tiny_scratch` ("uu": both from scratch),
and `test` (a locked random tower, a few steps; for the test suite).
"""

import ml_collections

from configs import trainer_defaults

VARIANTS = ("tiny", "tiny_unlocked", "tiny_scratch", "test")
TEXT_LENGTH = 56
IMAGE_TOWER = "workdirs/shapes_vit"  # The workdir of the demo ViT (see the docstring).


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the tiny LiT config; `arg` is one of VARIANTS (None = "tiny")."""
    arg = arg or "tiny"
    if arg not in VARIANTS:
        raise ValueError(f"synthetic_lit: unknown variant {arg!r}; use one of {VARIANTS}.")
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
        image=dict(patch_size=(4, 4), hidden_size=64, depth=4, mlp_dim=128, num_heads=4,
                   pool_type="gap", posemb="learn"),
        text=dict(vocab_size=259, hidden_size=64, depth=2, mlp_dim=128, num_heads=2,
                  pool_type="last"),
        out_dim=(None, 64),
        temperature_init=10.0,
        lock_image=True,
    ))
    c.model_input = ml_collections.ConfigDict(
        {"image": "float32[32,32,3]", "text": f"int32[{TEXT_LENGTH}]"})
    c.loss = ml_collections.ConfigDict({"name": "softmax_contrastive"})
    c.optimizer.update(dict(name="adamw", lr=1e-3, weight_decay=1e-4, grad_clip_norm=1.0,
                            freeze=("^img/",)))
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 50})
    c.init_from.update(dict(path=IMAGE_TOWER, target_prefix="img"))

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

    if arg in ("tiny_unlocked", "tiny_scratch"):
        c.model.lock_image = False
        c.optimizer.freeze = ()
    if arg == "tiny_scratch":
        c.init_from.path = ""
    if arg == "test":
        c.total_steps = 6
        c.batch_size = 32
        c.log_every = 3
        c.eval_every = 0
        c.checkpoint_every = 0
        c.checkpoint.async_save = False
        c.schedule.warmup_steps = 2
        c.init_from.path = ""
        c.model.image.update(dict(hidden_size=16, mlp_dim=32, depth=1, num_heads=2))
        c.model.text.update(dict(hidden_size=16, mlp_dim=32, depth=1))
        c.model.out_dim = (None, 16)
        for split in (c.data.train, c.data.eval):
            split.num_train = 512
            split.num_eval = 64
    return c
