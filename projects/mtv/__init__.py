"""MTV: Multiview Transformers for Video Recognition (Yan et al., CVPR 2022).

Importing the package registers the models "mtv_classification" and "mtv_single_view_vivit"
(the single-view ViViT baseline) and the init adapters "mtv" (one image-ViT checkpoint per
view) and "mtv_scenic" (a checkpoint of Scenic's MTV).
"""

from projects.mtv import (  # noqa: F401  (registration on import)
    baseline,
    init_adapter,
    model,
    scenic_adapter,
)
