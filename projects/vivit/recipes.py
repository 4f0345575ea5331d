"""Config pieces shared by the ViViT configs (model groups, video data, the paper recipe).

Training recipe of the paper's Kinetics / SSv2 / Epic-Kitchens runs (Arnab et al. 2021,
Sec. 4.1 and appendix; the values of Scenic's projects/vivit configs): synchronous SGD with
momentum 0.9, cosine learning-rate decay after 2.5 epochs of linear warm-up, batch 64,
gradient clipping at global norm 1, no weight decay, initialised from an ImageNet-21K ViT;
train clips with scale jitter 0.9-1.33 and random crops; test with clips x crops views.
"""

from __future__ import annotations

import ml_collections

from configs import trainer_defaults
from configs.model_sizes import vit_config

# Short names used in VARIANTS -> ViViT variants (framework.models.vivit.VARIANTS).
MODELS = {
    "ST": "spatio_temporal",  # Model 1.
    "FE": "factorised_encoder",  # Model 2.
    "FSA": "factorised_self_attention",  # Model 3.
    "FDP": "factorised_dot_product",  # Model 4.
}
PAPER = "ViViT (Arnab et al., ICCV 2021, arXiv 2103.15691)"


def model_group(size: str, model: str, num_classes: int, *, patch: tuple = (2, 16, 16),
                temporal_depth: int = 4, stochastic_depth: float = 0.0,
                **extra) -> ml_collections.ConfigDict:
    """Returns config.model for "vivit_classification": ViT size `size` ("B", "L", ...),
    `model` a key of MODELS, tubelet `patch` (t, h, w). Models 1 and 2 pool with the class
    token (as Scenic's configs), models 3 and 4 by the mean over tokens."""
    dims = vit_config(size)
    variant = MODELS[model]
    pool = "token" if model in ("ST", "FE") else "gap"
    return ml_collections.ConfigDict(dict(
        name="vivit_classification", variant=variant, num_classes=num_classes,
        patch_size=tuple(patch), hidden_size=dims["hidden_size"], depth=dims["depth"],
        mlp_dim=dims["mlp_dim"], num_heads=dims["num_heads"], temporal_depth=temporal_depth,
        pool_type=pool, stochastic_depth=stochastic_depth, dtype="float32", **extra))


def video_data(path: str, *, num_frames: int, stride: int, crop: int, min_resize: int,
               num_clips: int, num_crops: int, randaugment: tuple | None = None,
               mixup: float = 0.0, eval_split: str = "validation",
               label_op: str = "") -> ml_collections.ConfigDict:
    """Returns config.data for an `array_record` video dataset prepared at `path`.

    Train: a random window of `num_frames` frames `stride` apart, short side resized to
    `min_resize`, scale jitter 0.9-1.33, a random `crop`, flip, optional RandAugment
    (num_layers, magnitude) on the frames and batch mixup(alpha). Eval: `num_clips` clips x
    `num_crops` crops (1 = centre crop) per video for a multi-view evaluator. `label_op` is
    a per-example op inserted before the pixels (e.g. Epic-Kitchens' verb_noun_targets).
    """
    head = f"{label_op}|" if label_op else ""
    augment = f"randaugment({randaugment[0]}, {randaugment[1]})|" if randaugment else ""
    data = ml_collections.ConfigDict()
    data.train = ml_collections.ConfigDict(dict(
        name="array_record", path=path, split="train",
        preprocess=(f"{head}sample_frames({num_frames}, stride={stride})|decode_frames|"
                    f"resize_small({min_resize})|scale_jitter(0.9, 1.33)|random_crop({crop})|"
                    f"flip_lr|{augment}value_range(-1, 1)"),
        batch_preprocess=f"mixup({mixup})" if mixup else ""))
    crops = f"three_crop({crop})" if num_crops == 3 else f"center_crop({crop})"
    data.eval = ml_collections.ConfigDict(dict(
        name="array_record", path=path, split=eval_split,
        preprocess=(f"sample_clips({num_frames}, stride={stride}, num_clips={num_clips})|"
                    f"decode_frames|resize_small({crop})|{crops}|value_range(-1, 1)")))
    return data


def paper_config(*, model: ml_collections.ConfigDict, data: ml_collections.ConfigDict,
                 train_size: int, epochs: int, lr: float, label_smoothing: float,
                 num_frames: int, crop: int, reference: dict,
                 batch_size: int = 64) -> ml_collections.ConfigDict:
    """Returns a full paper config: SGD momentum 0.9, `lr` with 2.5 warm-up epochs and
    cosine decay over `epochs` of `train_size` videos, clip norm 1, no weight decay, the
    multi-view evaluator, init from an image ViT with the "vivit" adapter (set
    config.init_from.path), `model_input` of one view and the paper's `reference`."""
    c = trainer_defaults.get_config()
    c.batch_size = batch_size
    steps_per_epoch = train_size // batch_size
    c.total_steps = epochs * steps_per_epoch
    c.log_every = 100
    c.eval_every = 5 * steps_per_epoch
    c.checkpoint_every = steps_per_epoch
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"
    c.model = model
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent",
                                        "label_smoothing": label_smoothing})
    c.optimizer.update(dict(name="sgd", lr=lr, weight_decay=0.0, grad_clip_norm=1.0))
    c.optimizer.momentum = 0.9
    c.schedule = ml_collections.ConfigDict(
        {"name": "cosine", "warmup_steps": int(2.5 * steps_per_epoch)})
    c.data = data
    c.evaluators = ml_collections.ConfigDict({"multiview_classification": {"data": "eval"}})
    c.init_from.adapter = "vivit"
    c.init_from.options = ml_collections.ConfigDict(dict(
        inflation="central_frame",
        token_grid=(num_frames // model.patch_size[0], crop // model.patch_size[1],
                    crop // model.patch_size[2])))
    c.model_input = ml_collections.ConfigDict(
        {"video": f"float32[{num_frames},{crop},{crop},3]"})
    c.reference = ml_collections.ConfigDict(reference)
    return c
