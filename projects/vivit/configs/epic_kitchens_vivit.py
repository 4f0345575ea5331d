"""Epic-Kitchens-100 ViViT-L/16x2 FE (model 2) with verb and noun heads, fine-tuned from a
Kinetics-400 ViViT.

Source: "ViViT: A Video Vision Transformer" (Arnab et al., ICCV 2021), Table 5d of the ICCV
version (Table 6d of arXiv v2; ViViT-L/16x2 Fact. encoder: action 44.0, verb 66.4, noun 56.8
top-1); hyperparameters of Scenic's
projects/vivit/configs/epic_kitchens/vivit_large_factorised_encoder.py: 97 verbs + 300 nouns
in one head (the two heads' losses averaged), 32 frames stride 1, short side 256, crop 224,
4 temporal layers, SGD momentum lr 0.5, 50 epochs, batch 64, stochastic depth 0.2, label
smoothing 0.2, mixup 0.1, RandAugment (2, 15), no colour augmentation, 4 clips x 3 crops at
test (Scenic's model zoo: 43.6 action top-1 with 4x1 views).

Initialisation (Scenic's config: "a pretrained Kinetics checkpoint"; the paper's Table 4:
"+ Kinetics 400 initialisation"): set config.init_from.path to a Kinetics-400 ViViT-L/16x2
FE with 4 temporal layers (a Tessera workdir of `kinetics400_vivit.py:L/16x2-FE
--config.model.temporal_depth=4`, or a Scenic checkpoint of that model). The
"vivit.from_vivit" adapter loads every spatial and temporal parameter and leaves only the
397-way head new. Empty path: trains from scratch.

The records carry int `verb_label` and `noun_label`: `tools.prepare_dataset` writes them from
the Epic-Kitchens-100 annotation CSV (see projects/vivit/README.md).
"""

import ml_collections

from projects.vivit import recipes
from projects.vivit.epic_kitchens import config_pieces

VARIANTS = ("L/16x2-FE",)

TRAIN_SIZE = 67_217


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Epic-Kitchens config (`arg`: "L/16x2-FE" or None)."""
    del arg
    pieces = config_pieces(label_smoothing=0.2)
    c = recipes.paper_config(
        model=recipes.model_group("L", "FE", pieces["num_classes"], temporal_depth=4,
                                  stochastic_depth=0.2),
        path="epic_kitchens", train_size=TRAIN_SIZE, epochs=50, lr=0.5, label_smoothing=0.2,
        num_frames=32, stride=1, crop=224, train_augment="randaugment(2, 15)",
        batch_preprocess="mixup(0.1)", label_ops=pieces["label_ops"],
        init="vivit",
        reference=dict(source=f"{recipes.PAPER}, ICCV Table 5d / arXiv v2 Table 6d",
                       action_top1=44.0, verb_top1=66.4, noun_top1=56.8))
    c.loss, c.evaluators = pieces["loss"], pieces["evaluators"]
    return c
