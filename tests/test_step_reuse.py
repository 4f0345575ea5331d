"""framework.train_state.reuse_compiled_steps: a resumed run in the same process takes the
train step its first run compiled; a changed config compiles its own; off by default (one
run pair, as each compile costs seconds)."""

import json

import ml_collections

from framework import config as config_lib
from framework import train_state, trainer

SMALL = ["total_steps=2", "checkpoint_every=1", "eval_every=0", "log_every=1",
         "model.depth=1", "model.hidden_size=16", "model.mlp_dim=32", "model.num_heads=2"]


def _compiled_steps(monkeypatch) -> list:
    """Records every step compile_train_step returns."""
    seen, original = [], train_state.compile_train_step

    def recording(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(trainer.state_lib, "compile_train_step", recording)
    return seen


def test_a_resumed_run_reuses_its_compiled_step(tmp_path, monkeypatch):
    assert train_state._COMPILED_STEPS is None  # Off unless turned on.
    seen = _compiled_steps(monkeypatch)
    config = config_lib.load_config("configs/synthetic_shapes_vit.py:test", SMALL)
    config.evaluators = ml_collections.ConfigDict()
    train_state.reuse_compiled_steps()
    try:
        trainer.train_and_evaluate(config, str(tmp_path / "a"), stop_at_step=1)
        trainer.train_and_evaluate(config, str(tmp_path / "a"))  # Resumes: the same step.
        other = config_lib.load_config("configs/synthetic_shapes_vit.py:test",
                                       SMALL + ["optimizer.lr=0.5"])
        other.evaluators = ml_collections.ConfigDict()
        trainer.train_and_evaluate(other, str(tmp_path / "b"), stop_at_step=1)
    finally:
        train_state.reuse_compiled_steps(False)
    assert seen[0] is seen[1] and seen[2] is not seen[0]
    with open(tmp_path / "a" / "metrics.jsonl") as f:
        steps = [row["step"] for row in map(json.loads, f) if "train/loss" in row]
    assert steps == [1, 2]
