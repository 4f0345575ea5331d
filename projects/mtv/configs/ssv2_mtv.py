"""Something-Something v2 MTV-B: "Multiview Transformers for Video Recognition" (Yan et al.,
CVPR 2022), fine-tuned from a Kinetics MTV-B (Scenic's ssv2_mtv_b2_cva config): MTV-B
(Ti/8+S/4+B/2, cross-view attention at layers 5 and 11) on 48 frames 1 apart at 224,
RandAugment (1 layer, magnitude 15), mixup 0.3, label smoothing 0.2, SGD lr 0.2 with cosine
decay after 2.5 warm-up epochs, 60 epochs at batch 256, stochastic depth 0.1; 4 clips x 3
crops at test. Recipe and deviations: projects/mtv/recipes.py and README.md.

Reference numbers: params 310M are the paper's MTV-B row of its Kinetics-400 table (the same
model; the 174-way head has 0.3M fewer params than the 400-way one). Not verified: the
SSv2 top-1 and the GFLOPs of a 48-frame view (Scenic's MTV model zoo has no SSv2 entry and
the paper's SSv2 table could not be read here), so `config.reference` carries neither.

Set config.init_from.path to a Kinetics MTV-B checkpoint (e.g. a kinetics400_mtv.py:B
workdir): the "mtv.from_vit" adapter maps it by name and resizes its class tokens and global
position embedding from 32 to 48 frames; the 174-way head stays at init.
"""

import ml_collections

from projects.mtv import recipes

VARIANTS = ("B",)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the SSv2 config of MTV-B (`arg` must be "B" or None)."""
    arg = arg or "B"
    c = recipes.paper_config(
        "ssv2", arg, 174, dict(views="4x3"), epochs=60, batch_size=256, num_frames=48,
        stride=1, batch_preprocess="mixup(alpha=0.3)", train_augment="randaugment(1, 15)",
        label_smoothing=0.2, paper_gflops=False,
        source_note="params of the Kinetics-400 table (same MTV-B); top-1 not verified")
    return recipes.from_mtv_checkpoint(c)
