"""MTV: Multiview Transformers for Video Recognition (Yan et al., CVPR 2022).

Importing the package registers the models "mtv_classification" and "mtv_single_view_vivit"
(the single-view ViViT baseline) and the init adapter "mtv"
(one image-ViT checkpoint per view).
"""

from projects.mtv import baseline, init_adapter, model  # noqa: F401  (registration on import)
