"""Moments in Time MTV-L: "Multiview Transformers for Video Recognition" (Yan et al., CVPR
2022), fine-tuned from an MTV-L checkpoint (Scenic's mit_mtv_l2_cva config): 32 frames 3
apart, mixup 0.2, SGD lr 0.2 for 20 epochs at batch 256, 1 clip x 3 crops at test. Top-1
42.5 (Scenic's MTV model zoo).

Set config.init_from.path to an MTV-L checkpoint (e.g. a Kinetics run's workdir): with no
options.view_paths the "mtv.from_vit" adapter maps it by name; the 339-way head stays at init.
"""

import ml_collections

from projects.mtv import recipes

VARIANTS = ("L",)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Moments in Time config of MTV-L (`arg` must be "L" or None)."""
    arg = arg or "L"
    c = recipes.paper_config("moments_in_time", arg, 339, dict(top1=42.5, views="1x3"),
                             epochs=20, batch_size=256, stride=3, num_clips=1,
                             batch_preprocess="mixup(alpha=0.2)",
                             source_note="top-1 from Scenic's MTV model zoo (MiT)")
    return recipes.from_mtv_checkpoint(c)
