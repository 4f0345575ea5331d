"""Kinetics-400 ViViT: the four model variants at ViViT-B/16x2 and ViViT-L/16x2.

Source: "ViViT: A Video Vision Transformer" (Arnab et al., ICCV 2021), Table 2 (the model
variants with ViViT-B, 16x2 tubelets, 32 frames: params, GFLOPs per view, K400 top-1) and
Table 4 of the ICCV version (Table 5 of arXiv v2: spatial resolution; ViViT-L/16x2 with
spatio-temporal attention at crop 224: 80.3 top-1, 1446 GFLOPs per view); hyperparameters
of Scenic's projects/vivit/configs/kinetics400 (32 frames stride 2, crop 224, colour
augmentation, SGD momentum, lr 0.1 (0.05 for ViViT-B FE), 30 epochs, batch 64, 4x3 test
views of the short side resized to 256).

Variants (VARIANTS): "B/16x2" (model 1, spatio-temporal), "B/16x2-FE" (model 2, factorised
encoder, 4 temporal layers), "B/16x2-FSA" (model 3), "B/16x2-FDP" (model 4),
"B/16x2-FE-avgpool" (model 2 with the temporal encoder replaced by average pooling),
"L/16x2" (model 1), "L/16x2-FE" (model 2 with a 24-layer temporal encoder, as Scenic's
config), "L/16x2-FE-128f" (that model on 128-frame clips, one temporal view x 3 crops: the
ViViT-L/16x2 FE row of ICCV Table 5a (arXiv v2 Table 6a), 81.7 top-1 at 11.94 TFLOPs for
1x3 views = 3980 GFLOPs per view; Sec. 4.2: "The 128-frame model requires 3980.4 GFLOPs but
only a single view"; its 1x1-view row, 80.6 top-1 at 3.98 TFLOPs, is the same model on the
centre crop). The paper gives no parameter count for ViViT-L and no GFLOPs for the Scenic
FE-L model zoo entry whose top-1 (80.3, 4x3 views) is quoted.

Set config.init_from.path to an ImageNet-21K ViT-B/16 or ViT-L/16 (big_vision .npz, Scenic or
Tessera checkpoint) and config.data.*.path to a Kinetics-400 prepared with
`tools/prepare_dataset.py videos`.
"""

import ml_collections

from configs import video_data
from projects.vivit import recipes

VARIANTS = ("B/16x2", "B/16x2-FE", "B/16x2-FSA", "B/16x2-FDP", "B/16x2-FE-avgpool",
            "L/16x2", "L/16x2-FE", "L/16x2-FE-128f")

TRAIN_SIZE = 214_834  # Scenic's count; videos disappear from YouTube over time.
TABLE2 = f"{recipes.PAPER}, Table 2 (ViViT-B 16x2, 32 frames, Kinetics-400)"
# variant: (size, model, temporal_depth, lr, reference)
SETTINGS = {
    "B/16x2": ("B", "ST", 4, 0.1,
               dict(source=TABLE2, params=88_900_000, gflops=455.2, top1=80.0)),
    "B/16x2-FE": ("B", "FE", 4, 0.05,
                  dict(source=TABLE2, params=115_100_000, gflops=284.4, top1=78.8)),
    "B/16x2-FSA": ("B", "FSA", 4, 0.1,
                   dict(source=TABLE2, params=117_300_000, gflops=372.3, top1=77.4)),
    "B/16x2-FDP": ("B", "FDP", 4, 0.1,
                   dict(source=TABLE2, params=88_900_000, gflops=277.1, top1=76.3)),
    "B/16x2-FE-avgpool": ("B", "FE", 0, 0.05,
                          dict(source=TABLE2 + ", average-pool baseline", params=86_700_000,
                               gflops=283.9, top1=75.8)),
    "L/16x2": ("L", "ST", 4, 0.1,
               dict(source=f"{recipes.PAPER}, ICCV Table 4 / arXiv v2 Table 5 (crop 224)",
                    gflops=1446.0, top1=80.3)),
    "L/16x2-FE": ("L", "FE", 24, 0.1,
                  dict(source="Scenic ViViT model zoo (README), ViViT-L/16x2 FE; GFLOPs: "
                       f"{recipes.PAPER}, Sec. 4.2 (995.3 per 32-frame view)",
                       gflops=995.3, top1=80.3, views="4x3")),
    "L/16x2-FE-128f": ("L", "FE", 24, 0.1,
                       dict(source=f"{recipes.PAPER}, ICCV Table 5a / arXiv v2 Table 6a "
                            "(ViViT-L/16x2 FE, 128 frames, 11.94 TFLOPs / 3 views)",
                            gflops=3980.4, top1=81.7, top5=93.8, views="1x3",
                            top1_1x1=80.6, top5_1x1=92.7)),
}
# variant: (frames per clip, test clips); the others take 32-frame clips, 4 per video.
CLIPS = {"L/16x2-FE-128f": (128, 1)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Kinetics-400 config of `arg` (one of VARIANTS; None = "B/16x2-FE")."""
    arg = arg or "B/16x2-FE"
    size, model, temporal_depth, lr, reference = SETTINGS[arg]
    frames, clips = CLIPS.get(arg, (32, 4))
    return recipes.paper_config(
        model=recipes.model_group(size, model, 400, temporal_depth=temporal_depth),
        path="kinetics400", train_size=TRAIN_SIZE, epochs=30, lr=lr, label_smoothing=0.0,
        num_frames=frames, stride=2, crop=224, num_clips=clips,
        train_augment=video_data.COLOR_AUGMENT, reference=reference)
