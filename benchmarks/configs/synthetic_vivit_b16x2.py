"""ViViT-B/16x2 on 32-frame 224x224 clips of `synthetic_motion`: the video train-step
benchmark.

Not a training recipe: `tools/benchmark.py` times its train step (batch 1 on a CPU, float32;
`--compare` trains transformers' `VivitForVideoClassification` on the same clip;
benchmarks/gpu.sh raises the batch, uses bfloat16 and cuDNN attention). Variants: `ST`
(model 1, spatio-temporal attention over all 16x14x14 tubelet tokens, the default) and `FE`
(model 2, factorised encoder with 4 temporal layers), the ViViT paper's B/16x2 models
(Arnab et al. 2021; projects/vivit/configs/kinetics400_vivit.py) with a 400-class head,
trained with AdamW so that the PyTorch twin runs the same update.
"""

import ml_collections

from configs import trainer_defaults
from projects.vivit import recipes

VARIANTS = ("ST", "FE")
FRAMES = 32


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the benchmark config of `arg` (one of VARIANTS; None = "ST")."""
    arg = arg or "ST"
    if arg not in VARIANTS:
        raise ValueError(f"synthetic_vivit_b16x2: unknown variant {arg!r}; use one of "
                         f"{VARIANTS}.")
    c = trainer_defaults.get_config()
    c.project = "vivit"
    c.total_steps = 100
    c.batch_size = 1
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.sharding.rules = "dp"
    # Unrolled layers: with blockwise attention (the CPU default) the model 1 step needs 4.6
    # GB in XLA's memory analysis unrolled and 5.7 GB scanned, and runs 7% faster unrolled.
    c.model = recipes.model_group("B", arg, 400, scan=False)
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent", "label_smoothing": 0.0})
    c.optimizer.update(dict(name="adamw", lr=1e-4, weight_decay=1e-4, grad_clip_norm=1.0))
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 10})
    motion = {"name": "synthetic_motion", "num_frames": FRAMES, "image_size": 224,
              "num_train": 4, "num_eval": 2}
    c.data.train = ml_collections.ConfigDict({**motion, "split": "train"})
    c.data.eval = ml_collections.ConfigDict({**motion, "split": "eval"})
    c.evaluators = ml_collections.ConfigDict()
    c.model_input = ml_collections.ConfigDict({"video": f"float32[{FRAMES},224,224,3]"})
    return c
