"""ViViT: A Video Vision Transformer (Arnab et al., ICCV 2021).

Importing the package registers the model "vivit_classification"; for Epic-Kitchens the loss
"epic_kitchens_xent", the evaluator "epic_kitchens_multiview" and the preprocess op
"verb_noun_targets"; and the init adapter "vivit" (a 2D image ViT mapped into any of the
four ViViT variants).
"""

from projects.vivit import epic_kitchens, evaluators, hf_vivit, init_adapter, model  # noqa: F401
