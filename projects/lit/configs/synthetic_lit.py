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

from configs import synthetic_image_text

VARIANTS = ("tiny", "tiny_unlocked", "tiny_scratch", "test")
IMAGE_TOWER = "workdirs/shapes_vit"  # The workdir of the demo ViT (see the docstring).


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the tiny LiT config; `arg` is one of VARIANTS (None = "tiny")."""
    arg = arg or "tiny"
    if arg not in VARIANTS:
        raise ValueError(f"synthetic_lit: unknown variant {arg!r}; use one of {VARIANTS}.")
    c = synthetic_image_text.get_config()
    c.model = ml_collections.ConfigDict(dict(
        name="image_text.two_tower",
        image=dict(patch_size=(4, 4), hidden_size=64, depth=4, mlp_dim=128, num_heads=4,
                   pool_type="gap", posemb="learn"),
        text=dict(vocab_size=synthetic_image_text.BYTE_VOCAB_SIZE, hidden_size=64, depth=2,
                  mlp_dim=128, num_heads=2, pool_type="last"),
        out_dim=(None, 64),
        temperature_init=10.0,
        lock_image=True,
    ))
    c.loss = ml_collections.ConfigDict({"name": "image_text.softmax_contrastive"})
    c.optimizer.update(dict(name="adamw", lr=1e-3, weight_decay=1e-4, grad_clip_norm=1.0,
                            freeze=("^img/",)))
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 50})
    c.init_from.update(dict(path=IMAGE_TOWER, target_prefix="img"))

    if arg in ("tiny_unlocked", "tiny_scratch"):
        c.model.lock_image = False
        c.optimizer.freeze = ()
    if arg in ("tiny_scratch", "test"):
        c.init_from.path = ""
    if arg == "test":
        synthetic_image_text.shrink_for_tests(c)
    return c
