"""Shared by the tiny image-text configs of projects/siglip and projects/lit.

`get_config()` is a trainer config for `synthetic_captions` (synthetic_shapes images with
captions, byte tokens): batch 128 over all devices on the data axis, 1000 steps, the
zero-shot and retrieval evaluators on the 1,000 held-out eval images, and the model input.
The projects add their model, loss and optimizer. `shrink_for_tests` turns such a config
into a few-step run with width-16 towers on a small split, for the test suite.
"""

import ml_collections

from configs import trainer_defaults

TEXT_LENGTH = 56  # The longest caption is 48 bytes, plus EOS.
BYTE_VOCAB_SIZE = 259  # framework.data.tokenizers.ByteTokenizer


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the shared tiny image-text trainer config (`arg` is unused)."""
    del arg
    c = trainer_defaults.get_config()
    c.total_steps = 1000
    c.batch_size = 128
    c.log_every = 100
    c.eval_every = 500
    c.checkpoint_every = 500
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.sharding.rules = "dp"
    c.model_input = ml_collections.ConfigDict(
        {"image": "float32[32,32,3]", "text": f"int32[{TEXT_LENGTH}]"})
    data = dict(name="synthetic_captions", max_len=TEXT_LENGTH, tokenizer="bytes")
    c.data.train = ml_collections.ConfigDict({**data, "split": "train"})
    c.data.eval = ml_collections.ConfigDict({**data, "split": "eval"})
    c.evaluators = ml_collections.ConfigDict({
        "zero_shot": {"name": "image_text.zero_shot", "data": "eval", "tokenizer": "bytes"},
        "retrieval": {"name": "image_text.retrieval", "data": "eval"},
    })
    c.reference = ml_collections.ConfigDict({
        "source": "none (a CPU sanity run); chance: zero-shot top-1 1/12 = 0.083, "
                  "recall@1 1/1000 = 0.001"})
    return c


def shrink_for_tests(c: ml_collections.ConfigDict) -> None:
    """Makes `c` (a two-tower config from get_config) a 6-step run with width-16, depth-1
    towers on 512 train / 64 eval examples, evaluated once at the end."""
    c.total_steps = 6
    c.batch_size = 32
    c.log_every = 3
    c.eval_every = 0
    c.checkpoint_every = 0
    c.checkpoint.async_save = False
    c.schedule.warmup_steps = 2
    c.model.image.update(dict(hidden_size=16, mlp_dim=32, depth=1, num_heads=2))
    c.model.text.update(dict(hidden_size=16, mlp_dim=32, depth=1, num_heads=2))
    c.model.out_dim = (None, 16)
    for split in (c.data.train, c.data.eval):
        split.num_train = 512
        split.num_eval = 64
