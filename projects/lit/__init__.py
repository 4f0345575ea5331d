"""LiT: "Zero-Shot Transfer with Locked-image text Tuning" (Zhai et al., CVPR 2022).

A pretrained image tower is locked (frozen: `model.lock_image` stops gradients at its output
and `optimizer.freeze` gives its params zero updates and no optimizer state) and a text
tower learns to read out its embedding space with the softmax contrastive loss. Built on the
base project projects/image_text, imported here so that its pieces are registered: the
"image_text.two_tower" model, the "image_text.softmax_contrastive" loss and the
"image_text.zero_shot" / "image_text.retrieval" evaluators. Configs: configs/imagetext_lit.py
(the paper's models) and configs/synthetic_lit.py (tiny, CPU).
"""

import projects.image_text  # noqa: F401  (registers the two-tower pieces)
