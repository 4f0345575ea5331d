"""Kinetics-700 MTV-B and MTV-L: "Multiview Transformers for Video Recognition" (Yan et
al., CVPR 2022); the same models and recipe as Kinetics-400 (Scenic's k700_mtv_b2_cva /
k700_mtv_l2_cva configs). Top-1 with 4 clips x 3 crops from Scenic's MTV model zoo:
MTV-B 73.5, MTV-L 75.2.

Variants (VARIANTS): B, L (see kinetics400_mtv.py).
"""

import ml_collections

from projects.mtv import recipes

VARIANTS = ("B", "L")
METRICS = {"B": dict(top1=73.5), "L": dict(top1=75.2)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Kinetics-700 config of MTV-`arg` (one of VARIANTS; None = "B")."""
    arg = arg or "B"
    return recipes.paper_config("kinetics700", arg, 700, dict(METRICS[arg], views="4x3"),
                                source_note="top-1 from Scenic's MTV model zoo (K700)")
