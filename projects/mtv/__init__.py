"""MTV: Multiview Transformers for Video Recognition (Yan et al., CVPR 2022).

Builds on projects.vivit (the single-view baseline is its ViViT). Importing the package
registers the models "mtv.classifier" and "mtv.single_view_vivit" (the single-view ViViT
baseline) and the init adapters "mtv.from_vit" (one image-ViT checkpoint per view) and
"mtv.from_scenic" (a checkpoint of Scenic's MTV).
"""

from projects.mtv import (  # noqa: F401  (registration on import)
    baseline,
    init_adapter,
    model,
    scenic_adapter,
)
