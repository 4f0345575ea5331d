"""Shared config pieces for video classification on prepared datasets (Kinetics, Moments
in Time): the `config.data` group and the trainer recipe of Scenic's ViViT / MTV configs.

Facts carried over from Scenic's ViViT / MTV video recipes: train clips of `num_frames`
frames `stride` apart, short side `min_resize` (256; 288 on SSv2), scale jitter 0.9-1.33,
random crops and flips, colour augmentation on Kinetics / Moments in Time (COLOR_AUGMENT),
pixels in [-1, 1]; test with `num_clips` evenly spaced clips x 3 spatial crops per video,
each crop taken from the frames resized to short side `min_resize` (the field of view of
training), the evaluator "multiview_classification" averaging their logits; SGD with
momentum 0.9, no weight decay, gradient clipping at norm 1, cosine decay after 2.5 warm-up
epochs.
"""

from __future__ import annotations

import ml_collections

from configs import trainer_defaults

# Record datasets written by tools/prepare_dataset.py from a folder of videos.
RECORDS_DATASET = "array_record"
# Scenic's Kinetics / Moments in Time train augmentation (do_color_augment): brightness,
# saturation, contrast and hue jitter with probability 0.8, then grey with probability 0.1.
COLOR_AUGMENT = "color_augment(0.8, 0.1)"


def video_data(num_frames: int = 32, stride: int = 2, crop: int = 224, num_clips: int = 4,
               name: str = RECORDS_DATASET, eval_split: str = "validation",
               batch_preprocess: str = "", path: str = "", min_resize: int = 256,
               train_augment: str = "", num_crops: int = 3,
               label_ops: str = "") -> ml_collections.ConfigDict:
    """Returns config.data with `train` and `eval` entries for a prepared video dataset.

    Train: "sample_frames|decode_frames|resize_small(min_resize)|scale_jitter|random_crop|
    flip_lr|<train_augment>|value_range(-1, 1)"; eval: `num_clips` clips x three_crop(crop)
    views per video (num_crops=1: center_crop) of the frames resized to short side
    `min_resize`. `batch_preprocess` (e.g. "mixup(alpha=0.2)")
    is set on the train split when given; `path` (the prepared dataset, for the
    `array_record` dataset) on both splits; `label_ops` (ops on the labels, e.g.
    "vivit.verb_noun_targets(97, 300)") run first in training.
    """
    data = ml_collections.ConfigDict()
    label_ops = f"{label_ops}|" if label_ops else ""
    train_augment = f"{train_augment}|" if train_augment else ""
    data.train = ml_collections.ConfigDict(dict(
        name=name, split="train",
        preprocess=(f"{label_ops}sample_frames({num_frames}, stride={stride})|decode_frames|"
                    f"resize_small({min_resize})|scale_jitter(0.9, 1.33)|random_crop({crop})|"
                    f"flip_lr|{train_augment}value_range(-1, 1)")))
    if batch_preprocess:
        data.train.batch_preprocess = batch_preprocess
    crops = f"three_crop({crop})" if num_crops == 3 else f"center_crop({crop})"
    data.eval = ml_collections.ConfigDict(dict(
        name=name, split=eval_split,
        preprocess=(f"sample_clips({num_frames}, stride={stride}, num_clips={num_clips})|"
                    f"decode_frames|resize_small({min_resize})|{crops}|value_range(-1, 1)")))
    if name == RECORDS_DATASET:
        # Empty until the user points it at the prepared dataset (an error says so).
        data.train.path = data.eval.path = path
    return data


def video_training_config(*, train_size: int, epochs: int, batch_size: int, lr: float,
                          num_frames: int = 32, stride: int = 2, crop: int = 224,
                          num_clips: int = 4, batch_preprocess: str = "",
                          label_smoothing: float = 0.0,
                          **data_kwargs) -> ml_collections.ConfigDict:
    """Returns a full trainer config (model left empty) for video classification:
    `epochs` over `train_size` videos at `batch_size`, SGD momentum 0.9 at peak `lr` with
    cosine decay after 2.5 warm-up epochs, clipping at 1, FSDP over all devices, evaluation
    every 5 epochs and a checkpoint every epoch, data from `video_data` (`data_kwargs`: its
    other keyword arguments), evaluator "multiview_classification"."""
    c = trainer_defaults.get_config()
    c.batch_size = batch_size
    steps_per_epoch = train_size // batch_size
    c.total_steps = epochs * steps_per_epoch
    c.log_every = 100
    c.eval_every = 5 * steps_per_epoch
    c.checkpoint_every = steps_per_epoch
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent",
                                        "label_smoothing": label_smoothing})
    c.optimizer.update(dict(name="sgd", lr=lr, weight_decay=0.0, grad_clip_norm=1.0))
    c.optimizer.momentum = 0.9
    c.schedule = ml_collections.ConfigDict(
        {"name": "cosine", "warmup_steps": int(2.5 * steps_per_epoch)})
    # Only the splits: data_dir, worker_count, ... keep the trainer defaults (and overrides).
    splits = video_data(num_frames=num_frames, stride=stride, crop=crop, num_clips=num_clips,
                        batch_preprocess=batch_preprocess, **data_kwargs)
    c.data.train, c.data.eval = splits.train, splits.eval
    # average: "logits" as the released recipes ("softmax" averages softmax scores instead).
    c.evaluators = ml_collections.ConfigDict(
        {"multiview_classification": {"data": "eval", "average": "logits"}})
    return c
