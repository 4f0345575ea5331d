"""Epic-Kitchens-100 ViViT-L/16x2 FE (model 2) with verb and noun heads.

Source: "ViViT: A Video Vision Transformer" (Arnab et al., ICCV 2021), Table 5d of the ICCV
version (Table 6d of arXiv v2; ViViT-L/16x2 Fact. encoder: action 44.0, verb 66.4, noun 56.8
top-1); hyperparameters of Scenic's projects/vivit/configs/epic_kitchens: 97 verbs + 300
nouns in one head, 32 frames stride 1, crop 224, 4 temporal layers, SGD momentum lr 0.5, 50
epochs, batch 64, stochastic depth 0.2, label smoothing 0.2, mixup 0.1, RandAugment (2, 15),
no colour augmentation, 4 clips x 3 crops at test (Scenic's model zoo: 43.6 action top-1).

The records must carry int `verb_label` and `noun_label` (tools/prepare_dataset.py writes a
single `label` today, so an Epic-Kitchens set has to be written with those two fields).
"""

import ml_collections

from projects.vivit import recipes
from projects.vivit.epic_kitchens import EPIC_KITCHENS_100

VARIANTS = ("L/16x2-FE",)

TRAIN_SIZE = 67_217


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Epic-Kitchens config (`arg`: "L/16x2-FE" or None)."""
    del arg
    verbs, nouns = EPIC_KITCHENS_100["num_verbs"], EPIC_KITCHENS_100["num_nouns"]
    c = recipes.paper_config(
        model=recipes.model_group("L", "FE", verbs + nouns, temporal_depth=4,
                                  stochastic_depth=0.2),
        path="epic_kitchens", train_size=TRAIN_SIZE, epochs=50, lr=0.5, label_smoothing=0.2,
        num_frames=32, stride=1, crop=224, train_augment="randaugment(2, 15)",
        batch_preprocess="mixup(0.1)", label_ops=f"vivit.verb_noun_targets({verbs}, {nouns})",
        reference=dict(source=f"{recipes.PAPER}, ICCV Table 5d / arXiv v2 Table 6d",
                       action_top1=44.0, verb_top1=66.4, noun_top1=56.8))
    c.loss = ml_collections.ConfigDict(dict(name="vivit.epic_kitchens_xent", num_verbs=verbs,
                                            num_nouns=nouns, label_smoothing=0.2))
    c.evaluators = ml_collections.ConfigDict(
        {"epic_kitchens_multiview": {"name": "vivit.epic_kitchens_multiview", "data": "eval",
                                     "num_verbs": verbs, "average": "logits"}})
    return c
