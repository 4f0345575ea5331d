"""Config pieces shared by the TokenLearner configs: the model group and data groups.

Facts carried over (not code): the ViT fine-tuning recipe for ImageNet at 384 (Dosovitskiy
et al. 2021, App. B.1.1: SGD momentum 0.9, batch 512, no weight decay, gradient clipping at
norm 1, cosine decay) and Scenic's ViViT Kinetics-400 recipe (SGD momentum 0.9, lr 0.1 with
cosine decay and 2.5 warm-up epochs, 30 epochs at batch 64, clipping at 1; 32 frames at
stride 2, short side 256, scale jitter 0.9-1.33, 224 crops; 4 clips x 3 crops at test).
"""

from __future__ import annotations

import ml_collections

from configs import model_sizes

# Record datasets written by tools/prepare_dataset.py (folders of images / videos).
IMAGENET_DATASET = "array_records"
KINETICS_DATASET = "array_records"
KINETICS400_TRAIN_SIZE = 214_834  # Scenic's count; videos disappear from YouTube over time.


def model_group(size: str, num_classes: int, patch_size: tuple[int, ...], *,
                tokenlearner_loc: int | None, num_tokens: int = 8, depth: int | None = None,
                **extra) -> ml_collections.ConfigDict:
    """Returns config.model for "token_learner_classification" of ViT size `size` ("B",
    "L", ...) with `patch_size` (2 ints for images, 3 for videos; tubelet time first), the
    TokenLearner at `tokenlearner_loc` (None: the plain ViT / ViViT), `depth` overriding the
    size's depth, and `extra` model fields (e.g. use_token_fuser)."""
    shape = model_sizes.vit_config(size)
    if depth is not None:
        shape["depth"] = depth
    return ml_collections.ConfigDict(dict(
        name="token_learner_classification", num_classes=num_classes,
        patch_size=tuple(patch_size), **shape, posemb="learn",
        tokenlearner_loc=ml_collections.FieldReference(tokenlearner_loc, field_type=int),
        num_tokens=num_tokens, tokenlearner_version="1.1", bottleneck_dim=64,
        use_token_fuser=False, tokens_per="time_step", dropout=0.0, attention_dropout=0.0,
        stochastic_depth=0.0, dtype="bfloat16", **extra))


def imagenet_data(resolution: int) -> ml_collections.ConfigDict:
    """Returns config.data for ImageNet-1k fine-tuning at `resolution` (random-resized crops
    and flips for training; a plain resize for evaluation, as in the ViT paper)."""
    data = ml_collections.ConfigDict()
    data.train = ml_collections.ConfigDict(dict(
        name=IMAGENET_DATASET, split="train",
        preprocess=f"decode_image|inception_crop({resolution})|flip_lr|value_range(-1, 1)"))
    data.eval = ml_collections.ConfigDict(dict(
        name=IMAGENET_DATASET, split="validation",
        preprocess=f"decode_image|resize({resolution})|value_range(-1, 1)"))
    return data


def kinetics_data(num_frames: int = 32, stride: int = 2,
                  crop: int = 224) -> ml_collections.ConfigDict:
    """Returns config.data for Kinetics: train clips of `num_frames` frames `stride` apart
    with scale jitter, `crop` crops and flips; eval 4 clips x 3 crops per video (evaluator
    "multiview_classification")."""
    data = ml_collections.ConfigDict()
    data.train = ml_collections.ConfigDict(dict(
        name=KINETICS_DATASET, split="train",
        preprocess=(f"sample_frames({num_frames}, stride={stride})|decode_frames|"
                    f"resize_small(256)|scale_jitter(0.9, 1.33)|random_crop({crop})|flip_lr|"
                    "value_range(-1, 1)")))
    data.eval = ml_collections.ConfigDict(dict(
        name=KINETICS_DATASET, split="validation",
        preprocess=(f"sample_clips({num_frames}, stride={stride}, num_clips=4)|decode_frames|"
                    f"resize_small({crop})|three_crop({crop})|value_range(-1, 1)")))
    return data
