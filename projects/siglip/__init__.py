"""SigLIP: "Sigmoid Loss for Language Image Pre-Training" (Zhai et al., ICCV 2023).

Built from shared framework pieces, imported here so that they are registered: the
"two_tower" model (framework/models/two_tower.py), the "sigmoid_pairwise" loss with its
chunked device-ring form (framework/contrastive_losses.py), and the "zero_shot" and
"retrieval" evaluators. Configs: configs/webli_siglip.py (the released models) and
configs/synthetic_siglip.py (tiny, trains on CPU in minutes).
"""

import framework.evaluators  # noqa: F401  (zero_shot, retrieval)
import framework.losses  # noqa: F401  (sigmoid_pairwise)
import framework.models  # noqa: F401  (two_tower)
from projects.siglip import hf_siglip, open_clip_siglip  # noqa: F401, E402  (checkpoint formats)
