"""Config pieces shared by the TokenLearner configs: the model group and ImageNet data.

Facts carried over (not code): the ViT fine-tuning recipe for ImageNet at 384 (Dosovitskiy
et al. 2021, App. B.1.1: SGD momentum 0.9, batch 512, no weight decay, gradient clipping at
norm 1, cosine decay). The Kinetics recipe is the shared one in configs/video_data.py.
"""

from __future__ import annotations

import ml_collections

from configs import model_sizes
from configs.synthetic_classification import tiny_classification_config

KINETICS400_TRAIN_SIZE = 214_834  # Scenic's count; videos disappear from YouTube over time.
# Kinetics-400 as written by `tools/prepare_dataset.py videos --output kinetics400`
# (relative to config.data.data_dir).
KINETICS400_PATH = "kinetics400"


# The paper's experiments used TokenLearner v1.0 (Scenic's TokenLearnerModule: convolutional
# maps, sigmoid); v1.1 (Scenic's later TokenLearnerModuleV11) is a `_v1.1` variant.
PAPER_VERSION = "1.0"
V11_SUFFIX = "_v1.1"


def split_version(arg: str) -> tuple[str, str]:
    """Returns (variant without V11_SUFFIX, TokenLearner version) of a config `arg`."""
    if arg.endswith(V11_SUFFIX):
        return arg.removesuffix(V11_SUFFIX), "1.1"
    return arg, PAPER_VERSION


def model_group(size: str, num_classes: int, patch_size: tuple[int, ...], *,
                tokenlearner_loc: int | None, num_tokens: int = 8, depth: int | None = None,
                version: str = PAPER_VERSION, **extra) -> ml_collections.ConfigDict:
    """Returns config.model for "token_learner.classifier" of ViT size `size` ("B",
    "L", ...) with `patch_size` (2 ints for images, 3 for videos; tubelet time first), the
    TokenLearner `version` at `tokenlearner_loc` (None: the plain ViT / ViViT), `depth`
    overriding the size's depth, and `extra` model fields (e.g. use_token_fuser)."""
    shape = model_sizes.vit_config(size)
    if depth is not None:
        shape["depth"] = depth
    return ml_collections.ConfigDict(dict(
        name="token_learner.classifier", num_classes=num_classes,
        patch_size=tuple(patch_size), **shape, posemb="learn",
        tokenlearner_loc=ml_collections.FieldReference(tokenlearner_loc, field_type=int),
        num_tokens=num_tokens, tokenlearner_version=version, bottleneck_dim=64,
        use_token_fuser=False, tokens_per="time_step", dropout=0.0, attention_dropout=0.0,
        stochastic_depth=0.0, remat=False, remat_policy=None, dtype="bfloat16", **extra))


def imagenet_data(resolution: int) -> ml_collections.ConfigDict:
    """Returns config.data for ImageNet-1k (TFDS imagenet2012, prepared as ArrayRecord)
    fine-tuning at `resolution`: random-resized crops and flips for training, a plain resize
    for evaluation (as in the ViT paper)."""
    # tfds_data_dir "" = TFDS's default; set it on the command line to read another one.
    source = dict(name="tfds", tfds_name="imagenet2012", tfds_data_dir="",
                  skip_decoding=("image",))
    data = ml_collections.ConfigDict()
    data.train = ml_collections.ConfigDict(dict(
        source, split="train",
        preprocess=f"decode_image|inception_crop({resolution})|flip_lr|value_range(-1, 1)"))
    data.eval = ml_collections.ConfigDict(dict(
        source, split="validation",
        preprocess=f"decode_image|resize({resolution})|value_range(-1, 1)"))
    return data


def tiny_config(arg: str, dataset: str, num_classes: int, patch_size: tuple[int, ...],
                model_input: dict[str, str], *, total_steps: int, batch_size: int,
                warmup_steps: int, test_examples: int) -> ml_collections.ConfigDict:
    """Returns a tiny CPU config on the synthetic `dataset` ("synthetic_shapes" or
    "synthetic_motion") whose examples look like `model_input` ({"image" or "video": spec}).

    `arg`: "tiny" (width 64, depth 4, 8 tokens per group after layer 2), a plain baseline
    (any arg starting "tiny_": no TokenLearner) or "test" (width 32, depth 2, 4 tokens after
    layer 1, 8 steps at batch 16 on `test_examples` generated examples per split).
    """
    c = tiny_classification_config(dataset, total_steps=total_steps, batch_size=batch_size,
                                   lr=2e-3, warmup_steps=warmup_steps, model_input=model_input)
    c.model = model_group("Ti", num_classes, patch_size, tokenlearner_loc=2, num_tokens=8,
                          depth=4, version="1.1")
    c.model.update(dict(hidden_size=64, mlp_dim=128, num_heads=4, dtype="float32"))
    if arg.startswith("tiny_"):
        c.model.tokenlearner_loc = None

    if arg == "test":
        c.update(dict(total_steps=8, batch_size=16, log_every=4, eval_every=0,
                      checkpoint_every=0))
        c.schedule.warmup_steps = 2
        c.model.update(dict(hidden_size=32, mlp_dim=64, num_heads=2, depth=2, num_tokens=4))
        c.model.tokenlearner_loc = 1
        for split in (c.data.train, c.data.eval):
            split.update(dict(num_train=test_examples, num_eval=test_examples // 4))
    return c
