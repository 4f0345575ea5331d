"""Config pieces shared by the ViViT configs: model groups and the paper recipe.

Training recipe of the paper's Kinetics / SSv2 / Epic-Kitchens runs (Arnab et al. 2021,
Sec. 4.1 and appendix; the values of Scenic's projects/vivit configs), which is the shared
configs/video_data recipe: synchronous SGD with momentum 0.9, cosine learning-rate decay
after 2.5 epochs of linear warm-up, batch 64, gradient clipping at global norm 1, no weight
decay; train clips with scale jitter 0.9-1.33 and random crops; test with clips x crops
views; initialised from an ImageNet-21K ViT (SSv2 and Epic-Kitchens: from a Kinetics-400
ViViT, as the paper).
"""

from __future__ import annotations

import ml_collections

from configs import video_data
from configs.model_sizes import vit_config

# Short names used in VARIANTS -> ViViT variants (projects.vivit.backbone.VARIANTS).
MODELS = {
    "ST": "spatio_temporal",  # Model 1.
    "FE": "factorised_encoder",  # Model 2.
    "FSA": "factorised_self_attention",  # Model 3.
    "FDP": "factorised_dot_product",  # Model 4.
}
PAPER = "ViViT (Arnab et al., ICCV 2021, arXiv 2103.15691)"
# What a paper config initialises from -> its init adapter.
INITS = {"vit": "vivit.from_vit", "vivit": "vivit.from_vivit"}


def model_group(size: str, model: str, num_classes: int, *, patch: tuple = (2, 16, 16),
                temporal_depth: int = 4, stochastic_depth: float = 0.0,
                **extra) -> ml_collections.ConfigDict:
    """Returns config.model for "vivit.classifier": ViT size `size` ("B", "L", ...),
    `model` a key of MODELS, tubelet `patch` (t, h, w). Models 1 and 2 pool with the class
    token (as Scenic's configs), models 3 and 4 by the mean over tokens."""
    dims = vit_config(size)
    variant = MODELS[model]
    pool = "token" if model in ("ST", "FE") else "gap"
    return ml_collections.ConfigDict(dict(
        name="vivit.classifier", variant=variant, num_classes=num_classes,
        patch_size=tuple(patch), hidden_size=dims["hidden_size"], depth=dims["depth"],
        mlp_dim=dims["mlp_dim"], num_heads=dims["num_heads"], temporal_depth=temporal_depth,
        pool_type=pool, stochastic_depth=stochastic_depth, dtype="float32", **extra))


def paper_config(*, model: ml_collections.ConfigDict, path: str, train_size: int, epochs: int,
                 lr: float, label_smoothing: float, num_frames: int, stride: int, crop: int,
                 reference: dict, init: str = "vit", **data_kwargs) -> ml_collections.ConfigDict:
    """Returns a full paper config: the shared video recipe
    (configs/video_data.video_training_config: SGD momentum 0.9 at `lr`, 2.5 warm-up epochs
    then cosine decay over `epochs` of `train_size` videos, batch 64, clip norm 1, the
    multi-view evaluator) on the `array_record` dataset prepared at `path`, plus `model`,
    its initialisation (`init` "vit": an image ViT, adapter "vivit.from_vit"; "vivit": a
    video ViViT such as a Kinetics one, adapter "vivit.from_vivit"; set
    config.init_from.path, empty = from scratch), the `model_input` of one view and the
    paper's `reference`. `data_kwargs` go to configs.video_data.video_data (min_resize,
    num_crops, num_clips, train_augment, ...)."""
    c = video_data.video_training_config(
        train_size=train_size, epochs=epochs, batch_size=64, lr=lr, num_frames=num_frames,
        stride=stride, crop=crop, label_smoothing=label_smoothing, name="array_record",
        path=path, **data_kwargs)
    c.model = model
    grid = (num_frames // model.patch_size[0], crop // model.patch_size[1],
            crop // model.patch_size[2])
    if init not in INITS:
        raise ValueError(f"init={init!r}: use one of {tuple(INITS)}.")
    c.init_from.adapter = INITS[init]
    options = dict(inflation="central_frame") if init == "vit" else {}
    c.init_from.options = ml_collections.ConfigDict(dict(options, token_grid=grid))
    c.model_input = ml_collections.ConfigDict(
        {"video": f"float32[{num_frames},{crop},{crop},3]"})
    c.reference = ml_collections.ConfigDict(reference)
    return c
