"""Shared `config.data` groups for prepared video datasets (Kinetics, Moments in Time).

Facts carried over from Scenic's ViViT / MTV video recipes: train clips of `num_frames`
frames `stride` apart, short side 256, scale jitter 0.9-1.33, random crops and flips, pixels
in [-1, 1]; test with `num_clips` evenly spaced clips x 3 spatial crops per video (the
evaluator "multiview_classification" averages their softmax scores).
"""

from __future__ import annotations

import ml_collections

# Record datasets written by tools/prepare_dataset.py from a folder of videos.
RECORDS_DATASET = "array_records"


def video_data(num_frames: int = 32, stride: int = 2, crop: int = 224, num_clips: int = 4,
               name: str = RECORDS_DATASET, eval_split: str = "validation",
               batch_preprocess: str = "") -> ml_collections.ConfigDict:
    """Returns config.data with `train` and `eval` entries for a prepared video dataset.

    Train: "sample_frames|decode_frames|resize_small(256)|scale_jitter|random_crop|flip_lr|
    value_range(-1, 1)"; eval: `num_clips` clips x three_crop(crop) views per video.
    `batch_preprocess` (e.g. "mixup(alpha=0.2)") is set on the train split when given.
    """
    data = ml_collections.ConfigDict()
    data.train = ml_collections.ConfigDict(dict(
        name=name, split="train",
        preprocess=(f"sample_frames({num_frames}, stride={stride})|decode_frames|"
                    f"resize_small(256)|scale_jitter(0.9, 1.33)|random_crop({crop})|flip_lr|"
                    "value_range(-1, 1)")))
    if batch_preprocess:
        data.train.batch_preprocess = batch_preprocess
    data.eval = ml_collections.ConfigDict(dict(
        name=name, split=eval_split,
        preprocess=(f"sample_clips({num_frames}, stride={stride}, num_clips={num_clips})|"
                    f"decode_frames|resize_small({crop})|three_crop({crop})|"
                    "value_range(-1, 1)")))
    return data
