"""Tiny SigLIP end to end: the chunked sigmoid loss in the trainer on an 8-device mesh,
zero-shot and retrieval evaluation on held-out images."""

import json

import numpy as np

from framework import trainer
from tools import cli

CONFIG = "projects/siglip/configs/synthetic_siglip.py:test"


def test_tiny_siglip_trains_and_evaluates(tmp_path):
    config = cli.load_config(CONFIG, [f"data.data_dir={tmp_path / 'data'}",
                                             "log_every=1"])
    assert config.project == "siglip" and config.loss.chunked
    result = trainer.train_and_evaluate(config, str(tmp_path / "run"))
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert len(losses) == config.total_steps and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    metrics = result.metrics
    for key in ("eval/zero_shot/top1", "eval/zero_shot/top5", "eval/retrieval/i2t_recall@1",
                "eval/retrieval/t2i_recall@10"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["eval/zero_shot/count"] == metrics["eval/retrieval/count"] == 64
    params = result.state.params
    assert set(params) == {"img", "txt", "t", "b"}
