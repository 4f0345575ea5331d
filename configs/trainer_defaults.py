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
    # A train step whose loss or gradient is NaN/Inf is never applied; "stop" ends the run
    # with an error naming the step (checkpoints untouched), "skip" goes on with the next batch.
    c.on_nonfinite = "stop"

    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.sharding = ml_collections.ConfigDict({"rules": "dp"})

    c.model = ml_collections.ConfigDict({"name": ""})
    c.loss = ml_collections.ConfigDict({"name": "softmax_xent"})
    # The train step (registry TRAIN_STEPS): "default" is framework.step's; a project may
    # register its own. Keys besides `name` are the step factory's arguments.
    c.train_step = ml_collections.ConfigDict({"name": "default"})
    # Exponential moving average of the params, updated every step and used by the
    # evaluators when on: ema = decay * ema + (1 - decay) * params. 0.0 = off.
    c.ema = ml_collections.ConfigDict({"decay": 0.0})
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
    # Pretrained weights for a fresh run (ignored when the workdir has a checkpoint); see
    # framework/pretrained.py. `adapter` names the mapping (registry INIT_ADAPTERS) from the
    # checkpoint's params to this model's; `options` are its keyword arguments.
    c.init_from = ml_collections.ConfigDict({
        "path": "", "format": "auto", "adapter": "default", "source_prefix": "",
        "target_prefix": "", "dont_load": (), "options": ml_collections.ConfigDict()})

    c.checkpoint = ml_collections.ConfigDict({"max_to_keep": 3, "async_save": True})
    # Weights & Biases next to TensorBoard (framework.metrics.WandbWriter); off by default,
    # and `wandb` is not imported unless enabled. mode: "online" or "offline".
    c.wandb = ml_collections.ConfigDict({"enabled": False, "project": "tessera", "entity": "",
                                         "name": "", "mode": "online", "tags": ()})

    # What one example looks like to the model, for abstract builds (params and GFLOPs per
    # view in tools/model_table.py) without the data on disk: {batch key: "dtype[d0,d1,...]"},
    # e.g. {"video": "float32[32,224,224,3]"} or {"image": "float32[224,224,3]",
    # "text": "int32[64]"}. Empty: taken from the train dataset's features.
    c.model_input = ml_collections.ConfigDict()
    # The paper's numbers this config should reproduce (free-form; tools print them beside
    # ours): `source` (paper, table), `params` (count), `gflops` (per view, a multiply-add
    # once), and metrics such as `top1` or `zeroshot_top1`.
    c.reference = ml_collections.ConfigDict()
    return c
