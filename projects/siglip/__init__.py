"""SigLIP: "Sigmoid Loss for Language Image Pre-Training" (Zhai et al., ICCV 2023).

Built on the base project projects/image_text, imported here so that its pieces are
registered: the "image_text.two_tower" model, the "image_text.sigmoid_pairwise" loss with its
chunked device-ring form, and the "image_text.zero_shot" and "image_text.retrieval"
evaluators. Configs: configs/webli_siglip.py (the released models) and
configs/synthetic_siglip.py (tiny, trains on CPU in minutes).
"""

import projects.image_text  # noqa: F401  (registers the two-tower pieces)
from projects.siglip import hf_siglip, open_clip_siglip  # noqa: F401, E402  (checkpoint formats)
