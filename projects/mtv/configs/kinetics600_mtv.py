"""Kinetics-600 MTV-B and MTV-L: "Multiview Transformers for Video Recognition" (Yan et
al., CVPR 2022); the same models and recipe as Kinetics-400 (Scenic's k600_mtv_b2_cva /
k600_mtv_l2_cva configs). Top-1 with 4 clips x 3 crops from Scenic's MTV model zoo:
MTV-B 83.8, MTV-L 84.4 (ImageNet-21k ViTs). Params / GFLOPs per view as Kinetics-400
(the 600-way head adds 0.3M / 0.4M params).

Variants (VARIANTS): B, L (see kinetics400_mtv.py).
"""

import ml_collections

from projects.mtv import recipes

VARIANTS = ("B", "L")
METRICS = {"B": dict(top1=83.8), "L": dict(top1=84.4)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Kinetics-600 config of MTV-`arg` (one of VARIANTS; None = "B")."""
    arg = arg or "B"
    return recipes.paper_config("kinetics600", arg, 600, dict(METRICS[arg], views="4x3"),
                                source_note="top-1 from Scenic's MTV model zoo (K600)")
