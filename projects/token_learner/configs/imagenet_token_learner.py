"""ImageNet-1k fine-tuning of ViTs with a TokenLearner: the ImageNet settings of
"TokenLearner: What Can 8 Learned Tokens Do for Images and Videos?" (Ryoo et al., arXiv
2106.11297; JFT-300M pre-training, ImageNet fine-tuning at 384, B/16; L/16 at 512). The
table's number and values are unverified here (`reference.note`).

Variants (VARIANTS), each with the paper's GFLOPs and ImageNet top-1 in config.reference:
  ViT-B/16       the plain ViT-B/16 baseline (no TokenLearner).
  TL-B/16        8 learned tokens after layer 6 of 12 (TokenLearner in the middle).
  TL-B/16-21     21 layers, 8 tokens after layer 10.
  16TL-B/16-21   21 layers, 16 tokens after layer 10.
  ViT-L/16       the plain ViT-L/16 baseline at 512.
  16TL-L/16      16 tokens after layer 12 of 24, at 512.
TokenLearner v1.0 (the paper's module); "TL-B/16_v1.1" (or any variant + "_v1.1") uses v1.1.
The paper's table names depths and token counts, not the insertion layers of the B/16 rows;
layers 6 and 10 are the ones whose GFLOPs match the table (28.7 and 47.1 / 47.7).

Pre-training on JFT-300M cannot be redone here: set config.init_from.path to a pretrained
ViT of the same size (e.g. a big_vision ImageNet-21k ViT-B/16 .npz); the default adapter
resizes the position embedding, the new TokenLearner and head start at their init.
"""

import ml_collections

from configs import trainer_defaults
from projects.token_learner import recipes

VARIANTS = ("ViT-B/16", "TL-B/16", "TL-B/16-21", "16TL-B/16-21", "ViT-L/16", "16TL-L/16",
            "TL-B/16_v1.1")

SOURCE = ("TokenLearner (Ryoo et al., arXiv 2106.11297; not in the NeurIPS 2021 version), "
          "ImageNet fine-tuning after JFT pre-training")
UNVERIFIED = ("The table number and these values could not be checked here: no text of the "
              "arXiv version's ImageNet table was reachable (the NeurIPS 2021 paper, "
              "'Adaptive Space-Time Tokenization for Videos', has no image experiments).")
# variant: (size, resolution, depth, tokenlearner_loc, num_tokens, paper GFLOPs, top-1)
SETTINGS = {
    "ViT-B/16": ("B", 384, 12, None, 8, 55.6, 84.73),
    "TL-B/16": ("B", 384, 12, 6, 8, 28.7, 83.65),
    "TL-B/16-21": ("B", 384, 21, 10, 8, 47.1, 85.21),
    "16TL-B/16-21": ("B", 384, 21, 10, 16, 47.7, 85.45),
    "ViT-L/16": ("L", 512, 24, None, 16, 363.1, 87.35),
    "16TL-L/16": ("L", 512, 24, 12, 16, 178.1, 87.68),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the fine-tuning config of variant `arg` (one of VARIANTS; None = "TL-B/16")."""
    arg, version = recipes.split_version(arg or "TL-B/16")
    size, resolution, depth, loc, num_tokens, gflops, top1 = SETTINGS[arg]
    c = trainer_defaults.get_config()
    c.batch_size = 512
    c.total_steps = 20_000
    c.log_every = 100
    c.eval_every = 2_000
    c.checkpoint_every = 2_000
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"

    c.model = recipes.model_group(size, 1000, (16, 16), tokenlearner_loc=loc,
                                  num_tokens=num_tokens, depth=depth, version=version)
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent", "label_smoothing": 0.0})
    c.optimizer.update(dict(name="sgd", lr=0.03, weight_decay=0.0, grad_clip_norm=1.0))
    c.optimizer.momentum = 0.9
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 500})

    splits = recipes.imagenet_data(resolution)
    c.data.train, c.data.eval = splits.train, splits.eval
    c.evaluators = ml_collections.ConfigDict({"classification": {"data": "eval"}})
    c.init_from.dont_load = ("^head/",)

    c.model_input = ml_collections.ConfigDict({"image": f"float32[{resolution},{resolution},3]"})
    c.reference = ml_collections.ConfigDict(dict(
        source=f"{SOURCE}, row '{arg}' ({resolution}x{resolution})", gflops=gflops, top1=top1,
        note=UNVERIFIED))
    return c
