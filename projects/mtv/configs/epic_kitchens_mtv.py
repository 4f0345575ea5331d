"""Epic-Kitchens-100 MTV-B: "Multiview Transformers for Video Recognition" (Yan et al., CVPR
2022), fine-tuned from a Kinetics MTV-B (Scenic's epic_mtv_b2_cva config): MTV-B
(Ti/8+S/4+B/2, cross-view attention at layers 5 and 11) with one head of 97 verb + 300 noun
logits, 64 frames 1 apart at 224, RandAugment (3 layers, magnitude 10), no mixup, label
smoothing 0.2, SGD lr 0.2 with cosine decay after 2.5 warm-up epochs, 80 epochs at batch
128, stochastic depth 0.1; 4 clips x 1 centre crop at test, scored by verb, noun and action
(both right) top-1 with the ViViT Epic-Kitchens loss and evaluator
(projects/vivit/epic_kitchens.py). Recipe and deviations: projects/mtv/recipes.py and
README.md.

Reference numbers: action top-1 46.7 (4x1 views) is Scenic's MTV model zoo for MTV-B
fine-tuned from Kinetics-400 (48.0 from Kinetics-700); params 310M are the paper's MTV-B row
of its Kinetics-400 table (the same model; the 397-way head has about as many params as the
400-way one). Not verified: the paper's verb and noun top-1 and the GFLOPs of a 64-frame
view (the paper's Epic-Kitchens table could not be read here), so `config.reference` carries
neither.

Data: `python -m tools.prepare_dataset videos --input EPIC_100_train.csv --video_root
EPIC-KITCHENS --split train --output DATA_DIR/epic_kitchens` (and EPIC_100_validation.csv
as split validation), which writes the verb_label / noun_label this config reads. Set
config.init_from.path to a Kinetics MTV-B checkpoint: the "mtv.from_vit" adapter maps it by
name and resizes its class tokens and global position embedding from 32 to 64 frames; the
head stays at init.
"""

import ml_collections

from projects.mtv import recipes
from projects.vivit.epic_kitchens import config_pieces

VARIANTS = ("B",)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the Epic-Kitchens-100 config of MTV-B (`arg` must be "B" or None)."""
    arg = arg or "B"
    pieces = config_pieces(label_smoothing=0.2)
    c = recipes.paper_config(
        "epic_kitchens", arg, pieces["num_classes"], dict(action_top1=46.7, views="4x1"),
        epochs=80, batch_size=128, num_frames=64, stride=1, num_crops=1,
        train_augment="randaugment(3, 10)", label_ops=pieces["label_ops"], paper_gflops=False,
        source_note="action top-1 from Scenic's MTV model zoo (EK-100, from K400); params of "
                    "the Kinetics-400 table (same MTV-B)")
    c.loss, c.evaluators = pieces["loss"], pieces["evaluators"]
    return recipes.from_mtv_checkpoint(c)
