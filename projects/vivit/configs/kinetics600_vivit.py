"""Kinetics-600 ViViT-L/16x2 (model 1) and ViViT-L/16x2 FE (model 2).

Source: "ViViT: A Video Vision Transformer" (Arnab et al., ICCV 2021): ViViT-L/16x2 (model 1)
costs 1446 GFLOPs per view (ICCV Table 4); its quoted Kinetics-600 top-1 / top-5 (82.5 / 95.6,
4x3 views) are unverified (`reference.note`). The FE row quotes Scenic's ViViT model zoo
(81.6 top-1, 4x3 views). Hyperparameters of Scenic's
projects/vivit/configs/kinetics600 (32 frames stride 2, crop 224, colour augmentation, SGD
momentum, lr 0.05 for FE, 30 epochs, batch 64, a 24-layer temporal encoder for FE).
"""

import ml_collections

from configs import video_data
from projects.vivit import recipes

VARIANTS = ("L/16x2", "L/16x2-FE")

TRAIN_SIZE = 363_213
UNVERIFIED = ("82.5 / 95.6 were quoted as the paper's Kinetics-600 row for ViViT-L/16x2 "
              "(model 1) but could not be checked: the ICCV version's Table 5b lists only "
              "ViViT-L/16x2 FE (82.9 top-1, 94.6 top-5). GFLOPs per view are those of the "
              "same model in ICCV Table 4 (Kinetics-400, crop 224).")
SETTINGS = {
    "L/16x2": ("ST", 4, 0.1,
               dict(source=f"{recipes.PAPER}, ICCV Table 4 (GFLOPs); top-1 / top-5 unverified",
                    gflops=1446.0, top1=82.5, top5=95.6, views="4x3", note=UNVERIFIED)),
    "L/16x2-FE": ("FE", 24, 0.05,
                  dict(source="Scenic ViViT model zoo (README), ViViT-L/16x2 FE",
                       top1=81.6, views="4x3")),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Kinetics-600 config of `arg` (one of VARIANTS; None = "L/16x2-FE")."""
    model, temporal_depth, lr, reference = SETTINGS[arg or "L/16x2-FE"]
    return recipes.paper_config(
        model=recipes.model_group("L", model, 600, temporal_depth=temporal_depth),
        path="kinetics600", train_size=TRAIN_SIZE, epochs=30, lr=lr, label_smoothing=0.0,
        num_frames=32, stride=2, crop=224, train_augment=video_data.COLOR_AUGMENT,
        reference=reference)
