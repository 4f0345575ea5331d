"""ViViT: A Video Vision Transformer (Arnab et al., ICCV 2021).

The ViViT backbone (backbone.py, with the factorised layers of factorized.py) is the base of
the video projects (MTV builds on it). Importing the package registers the model
"vivit.classifier"; for Epic-Kitchens the loss "vivit.epic_kitchens_xent", the evaluator
"vivit.epic_kitchens_multiview" and the preprocess op "vivit.verb_noun_targets"; and the init
adapters "vivit.from_vit" (a 2D image ViT mapped into any of the four ViViT variants) and
"vivit.from_vivit" (a ViViT checkpoint, ours or Scenic's, into a ViViT with other classes,
frames or crop).
"""

from projects.vivit import (  # noqa: F401
    epic_kitchens,
    evaluators,
    hf_vivit,
    init_adapter,
    model,
    video_init,
)
