"""Shared by the tiny CPU classification configs on the synthetic data sets (the demo on
`synthetic_shapes`, and the `synthetic_motion` / `synthetic_shapes` configs of
projects/vivit, projects/mtv and projects/token_learner).

`tiny_classification_config` is the trainer config those runs have in common: softmax
cross-entropy, AdamW with gradient clipping and a cosine schedule, the data set's train and
eval splits and the classification evaluator. The configs add their model and their test
variant.
"""

import ml_collections

from configs import trainer_defaults

MESHES = {
    "fsdp": {"data": 1, "fsdp": -1, "tensor": 1},  # Params sharded over all devices.
    "dp": {"data": -1, "fsdp": 1, "tensor": 1},  # Params replicated, the batch split.
}


def tiny_classification_config(dataset: str, *, total_steps: int, batch_size: int, lr: float,
                               warmup_steps: int, sharding: str = "fsdp",
                               eval_every: int | None = None,
                               model_input: dict[str, str] | None = None,
                               ) -> ml_collections.ConfigDict:
    """Returns a trainer config (no model) for classification on `dataset` ("synthetic_shapes"
    or "synthetic_motion"): `total_steps` at `batch_size`, AdamW at `lr` (weight decay 1e-4,
    clipping at 1) with `warmup_steps` of cosine warm-up, a mesh and rules for `sharding` (a
    MESHES key), evaluation and checkpoints every `eval_every` steps (default: half way) and
    `model_input` ({"image" or "video": spec}) when given."""
    c = trainer_defaults.get_config()
    c.seed = 0
    c.total_steps = total_steps
    c.batch_size = batch_size
    c.log_every = 50
    c.eval_every = eval_every or total_steps // 2
    c.checkpoint_every = c.eval_every
    c.mesh = ml_collections.ConfigDict(MESHES[sharding])
    c.sharding.rules = sharding

    c.loss = ml_collections.ConfigDict({"name": "softmax_xent", "label_smoothing": 0.0})
    c.optimizer.update(dict(name="adamw", lr=lr, weight_decay=1e-4, grad_clip_norm=1.0))
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": warmup_steps})

    c.data.train = ml_collections.ConfigDict({"name": dataset, "split": "train"})
    c.data.eval = ml_collections.ConfigDict({"name": dataset, "split": "eval"})
    c.evaluators = ml_collections.ConfigDict({"classification": {"data": "eval"}})
    if model_input is not None:
        c.model_input = ml_collections.ConfigDict(model_input)
    return c
