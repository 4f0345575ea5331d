"""Trainer defaults: every top-level key a Tessera config may hold, with its default.

Paper and demo configs start from `get_config()` here and fill in model, data, optimizer and
schedule. `framework.config.validate` rejects top-level keys that are not listed here.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns a ConfigDict with every trainer key at its default (`arg` is unused)."""
    del arg
    c = ml_collections.ConfigDict()
    c.project = ""  # projects/<project> is imported before anything is built; "" = none.
    c.seed = 0
    c.total_steps = 1000
    c.batch_size = 256  # Global batch over all processes.
    c.log_every = 50
    c.eval_every = 500  # 0 = only at the end.
    c.checkpoint_every = 500  # 0 = only at the end.

    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.sharding = ml_collections.ConfigDict({"rules": "dp"})

    c.model = ml_collections.ConfigDict({"name": ""})
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent"})
    c.optimizer = ml_collections.ConfigDict({
        "name": "adamw", "lr": 1e-3, "weight_decay": 0.0,
        "grad_clip_norm": ml_collections.FieldReference(None, field_type=float),
        "freeze": (), "lr_mults": (), "grad_accum_steps": 1})
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 0})

    c.data = ml_collections.ConfigDict()
    c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
    c.data.worker_count = 0
    c.data.on_corrupt = "error"  # Or "skip": drop (train) / mask out (eval) bad records.
    c.data.train = ml_collections.ConfigDict({"name": "", "split": "train"})
    c.data.eval = ml_collections.ConfigDict({"name": "", "split": "eval"})

    c.evaluators = ml_collections.ConfigDict()
    c.init_from = ml_collections.ConfigDict({"path": "", "format": "auto"})

    c.checkpoint = ml_collections.ConfigDict({"max_to_keep": 3, "async_save": True})
    return c
