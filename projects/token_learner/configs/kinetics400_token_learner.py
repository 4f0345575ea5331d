"""Kinetics-400 with TokenLearner on the unfactorised (joint space-time) ViViT-L: the video
settings of "TokenLearner: What Can 8 Learned Tokens Do for Images and Videos?" (Ryoo et
al., arXiv 2106.11297; JFT-300M pre-trained ViT-L, 32 frames at 224, 16x16x2 tubelets).

Variants (VARIANTS); "NatM" = N learned tokens per temporal slice after layer M:
  ViViT-L/16x2        the plain unfactorised ViViT-L/16x2 baseline (1446 GFLOPs per view).
  16at12-L/16x2       16 tokens per slice after layer 12 of 24 (766 GFLOPs per view).
  16at18-L/10x2       10x10x2 tubelets, 16 tokens after layer 18 of 35 (24 + 11 layers):
                      the paper's best Kinetics-400 model, 85.4 top-1 with 4 x 3 views,
                      4076 GFLOPs per view, 460M params.
TokenLearner v1.0 (the paper's module); "16at12-L/16x2_v1.1" uses v1.1.
After the TokenLearner the encoder sees 16 temporal slices x 16 tokens = 256 tokens.

Training: the shared ViViT / MTV video recipe (configs/video_data.py: SGD momentum 0.9, lr
0.1, cosine after 2.5 warm-up epochs, 30 epochs at batch 64; 32 frames at stride 2, 224
crops, colour augmentation; 4 clips x 3 crops of the short side resized to 256 at test) on
Kinetics-400 prepared by tools/prepare_dataset.py.
Pre-training on JFT-300M cannot be redone here: set config.init_from.path to a pretrained
ViT-L/16 (or a ViViT-L); the default adapter inflates the patch kernel and resizes the
position embedding. Extra layers (beyond 24) and the TokenLearner start at their init.
"""

import ml_collections

from configs import video_data
from projects.token_learner import recipes

VARIANTS = ("ViViT-L/16x2", "16at12-L/16x2", "16at18-L/10x2", "16at12-L/16x2_v1.1")

SOURCE = ("TokenLearner (Ryoo et al., NeurIPS 2021, arXiv 2106.11297), Kinetics-400 ViViT-L "
          "experiments (per view)")
UNVERIFIED = ("Table numbers and values could not be checked against the paper's text here; "
              "public leaderboards list 85.4 top-1 for 16at18 (L/10) on Kinetics-400.")
# variant: (patch (t, h, w), depth, tokenlearner_loc, GFLOPs per view, extra reference)
SETTINGS = {
    "ViViT-L/16x2": ((2, 16, 16), 24, None, 1446.0, {}),
    "16at12-L/16x2": ((2, 16, 16), 24, 12, 766.0, {}),
    "16at18-L/10x2": ((2, 10, 10), 35, 18, 4076.0,
                      dict(top1=85.4, top5=96.3, params=460_000_000, views="4x3")),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Kinetics-400 config of variant `arg` (one of VARIANTS; None =
    "16at12-L/16x2")."""
    arg, version = recipes.split_version(arg or "16at12-L/16x2")
    patch, depth, loc, gflops, extra = SETTINGS[arg]
    c = video_data.video_training_config(
        train_size=recipes.KINETICS400_TRAIN_SIZE, epochs=30, batch_size=64, lr=0.1,
        path=recipes.KINETICS400_PATH, train_augment=video_data.COLOR_AUGMENT)

    c.model = recipes.model_group("L", 400, patch, tokenlearner_loc=loc, num_tokens=16,
                                  depth=depth, version=version)
    c.init_from.dont_load = ("^head/",)

    c.model_input = ml_collections.ConfigDict({"video": "float32[32,224,224,3]"})
    c.reference = ml_collections.ConfigDict(dict(
        source=f"{SOURCE}, row '{arg}'", gflops=gflops, note=UNVERIFIED, **extra))
    return c
