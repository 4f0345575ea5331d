"""MTV: Multiview Transformers for Video Recognition (Yan et al., CVPR 2022).

Importing the package registers the model "mtv_classification" and the init adapter "mtv"
(one image-ViT checkpoint per view).
"""

from projects.mtv import init_adapter, model  # noqa: F401  (registration on import)
