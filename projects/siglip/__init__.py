"""SigLIP: "Sigmoid Loss for Language Image Pre-Training" (Zhai et al., ICCV 2023).

Built from shared framework pieces, imported here so that they are registered: the
"two_tower" model (framework/models/two_tower.py), the "sigmoid_pairwise" loss with its
chunked device-ring form (framework/contrastive_losses.py), and the "zero_shot" and
"retrieval" evaluators. Configs: configs/webli_siglip.py (the released models) and
configs/synthetic_siglip.py (tiny, trains on CPU in minutes).
"""

import projects.image_text  # noqa: F401  (registers the two-tower pieces)
