"""Image-text base project (as big_vision's proj/image_text): what the contrastive
image-text papers share, used by projects/siglip and projects/lit.

Importing the package registers the model "image_text.two_tower" (two_tower.py: an image
ViT and the text transformer of text_transformer.py), the losses
"image_text.sigmoid_pairwise" (with its chunked device-ring form) and
"image_text.softmax_contrastive" (contrastive_losses.py), and the evaluators
"image_text.zero_shot" and "image_text.retrieval" (zero_shot.py, retrieval.py; their shared
embedding passes are in embed.py). Its configs live with the papers that use it.
"""

from projects.image_text import (  # noqa: F401  (registration on import)
    contrastive_losses,
    retrieval,
    two_tower,
    zero_shot,
)
