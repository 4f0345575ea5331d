"""ImageNet-1k from scratch with a TokenLearner ViT: Scenic's released TokenLearner config
(scenic/projects/token_learner/configs/im1k_token_learner_config.py, run by the project's
main.py with Scenic's classification trainer and ImageNet dataset).

Variants (VARIANTS): "B/16", Scenic's VARIANT. Settings, each checked against that config
and the Scenic code it runs:
  model   ViT-B/16 at 224, TokenLearner v1.1 (use_v11) with 16 tokens before block 9 of 12
          (tokenlearner_loc 9), no TokenFuser, global average pooling ('gap'), no
          representation layer, dropout 0, attention dropout 0, float32; head kernel zero
          and head bias -10 (init_head_bias).
  loss    sigmoid cross-entropy over the 1000 classes, summed over classes and averaged
          over examples (the model is token_learner_multilabel_classification), no label
          smoothing.
  optim   Adam (beta1 0.9, beta2 0.999, eps 1e-8) with weight decay 0.3 times the learning
          rate on every parameter (flax.optim.Adam's decoupled decay), gradient clipping at
          global norm 1.
  lr      5e-3 peak, linear warm-up over 10k steps, then linear decay to 1e-5
          ('constant*linear_warmup*linear_decay', end_learning_rate 1e-5).
  steps   90 epochs at batch 4096: 90 * (1,281,167 // 4096) = 28,080 steps; seed 42;
          evaluation every 1000 steps, checkpoints every 5000.
  data    Scenic's ImageNet input: random-resized crops (area 0.08-1, aspect 3/4-4/3) to
          224 and flips for training; the centre 224/256 of the short side resized to 224
          for evaluation; ImageNet mean / std normalisation. No mixup, RandAugment or
          stochastic depth (Scenic's config sets stochastic_depth 0.1, but its
          TokenLearner ViT has no such field and never reads it).
Neither the config nor the paper publishes an accuracy or GFLOPs for this setting, so
config.reference carries only its source; see the project README.
"""

import ml_collections

from configs import trainer_defaults
from projects.token_learner import recipes

VARIANTS = ("B/16",)

SOURCE = ("Scenic token_learner configs/im1k_token_learner_config.py "
          "(ImageNet-1k from scratch)")
IMAGENET_TRAIN_SIZE = 1_281_167
EPOCHS, BATCH_SIZE, RESOLUTION = 90, 4096, 224


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns Scenic's ImageNet-1k from-scratch TokenLearner config; `arg` "B/16" (the
    default; another "SIZE/PATCH" of configs/model_sizes.py builds that ViT instead)."""
    size, _, patch = (arg or "B/16").partition("/")
    c = trainer_defaults.get_config()
    c.seed = 42
    c.batch_size = BATCH_SIZE
    c.total_steps = EPOCHS * (IMAGENET_TRAIN_SIZE // BATCH_SIZE)
    c.log_every = 100
    c.eval_every = 1000
    c.checkpoint_every = 5000
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"

    c.model = recipes.model_group(size, 1000, (int(patch or 16),) * 2, tokenlearner_loc=9,
                                  num_tokens=16, version="1.1", head_bias_init=-10.0)
    c.model.dtype = "float32"
    c.loss = ml_collections.ConfigDict({"name": "sigmoid_xent", "label_smoothing": 0.0})
    c.optimizer.update(dict(name="adamw", lr=5e-3, weight_decay=0.3, grad_clip_norm=1.0))
    c.optimizer.update(dict(b1=0.9, b2=0.999, eps=1e-8))
    c.optimizer.weight_decay_mask = (".*",)  # Every parameter, as flax.optim.Adam decays.
    c.schedule = ml_collections.ConfigDict(
        {"name": "linear", "warmup_steps": 10_000, "end_lr_ratio": 1e-5 / 5e-3})

    splits = recipes.imagenet_data(RESOLUTION)
    splits.train.preprocess = (f"decode_image|inception_crop({RESOLUTION})|flip_lr|"
                               "normalize")
    splits.eval.preprocess = (f"decode_image|resize_small({RESOLUTION * 256 // 224})|"
                              f"center_crop({RESOLUTION})|normalize")
    c.data.train, c.data.eval = splits.train, splits.eval
    c.evaluators = ml_collections.ConfigDict({"classification": {"data": "eval"}})

    c.model_input = ml_collections.ConfigDict({"image": f"float32[{RESOLUTION},{RESOLUTION},3]"})
    c.reference = ml_collections.ConfigDict(dict(source=SOURCE, epochs=EPOCHS))
    return c
