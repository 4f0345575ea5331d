"""Kinetics-400 MTV-B and MTV-L: "Multiview Transformers for Video Recognition" (Yan et
al., CVPR 2022), Kinetics-400 comparison table (4 clips x 3 crops at test).

Variants (VARIANTS):
  B   MTV-B = Ti/8+S/4+B/2, cross-view attention at layers (5, 11); 81.8 top-1, 95.0
      top-5; 310M params, 4.79 TFLOPs for 12 views (399 GFLOPs per view). Scenic's model
      zoo reports the same 81.8.
  L   MTV-L = Ti/16+S/8+B/4+L/2, cross-view attention at (11, 23); 84.3 top-1, 96.3
      top-5 (JFT-pretrained views); 876M params, 18.05 TFLOPs for 12 views.
Both with cross-view attention in the attended view's width (use_query_config=False), the
setting that matches these costs; Scenic's released configs use True (recipes.py).
Recipe and initialisation: projects/mtv/recipes.py. Set config.init_from.path and
config.init_from.options.view_paths to one image ViT per view (widest view first).
"""

import ml_collections

from projects.mtv import recipes

VARIANTS = ("B", "L")
METRICS = {"B": dict(top1=81.8, top5=95.0), "L": dict(top1=84.3, top5=96.3)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Kinetics-400 config of MTV-`arg` (one of VARIANTS; None = "B")."""
    arg = arg or "B"
    return recipes.paper_config("kinetics400", arg, 400, dict(METRICS[arg], views="4x3"))
