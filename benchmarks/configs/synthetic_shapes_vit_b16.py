"""ViT-B/16 at 224x224 on `synthetic_shapes` (rendered at 224 px): the train-step benchmark.

Not a training recipe: `tools/benchmark.py` times its train step (batch 8 on a CPU; raise
`--config.batch_size` on an accelerator). The model is the ViT paper's B/16 with a
1000-class head (Dosovitskiy et al. 2021, Table 1: 86M params; 17.6 GFLOPs per 224 px
image as reported by DeiT, Touvron et al. 2021, Table 1), so `tools/model_table.py` can
check it against those numbers. The data set is small (64 train images) so it is generated
in seconds; the benchmark repeats one batch.
"""

import ml_collections

from configs import model_sizes, trainer_defaults


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the benchmark config (`arg` is unused)."""
    del arg
    c = trainer_defaults.get_config()
    c.total_steps = 100
    c.batch_size = 8
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.sharding.rules = "dp"
    c.model = ml_collections.ConfigDict(dict(
        name="vit_classification", num_classes=1000, posemb="learn", pool_type="token",
        dtype="float32", **model_sizes.vit_config("B/16")))
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent", "label_smoothing": 0.0})
    c.optimizer.update(dict(name="adamw", lr=1e-3, weight_decay=1e-4, grad_clip_norm=1.0))
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 10})
    shapes = {"name": "synthetic_shapes", "image_size": 224, "num_train": 64, "num_eval": 16}
    c.data.train = ml_collections.ConfigDict({**shapes, "split": "train"})
    c.data.eval = ml_collections.ConfigDict({**shapes, "split": "eval"})
    c.evaluators = ml_collections.ConfigDict({"classification": {"data": "eval"}})
    c.model_input = ml_collections.ConfigDict({"image": "float32[224,224,3]"})
    c.reference = ml_collections.ConfigDict({
        "source": "ViT (Dosovitskiy et al. 2021) Table 1; GFLOPs: DeiT Table 1",
        "params": 86_000_000, "gflops": 17.6})
    return c
