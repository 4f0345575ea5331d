"""TokenLearner project: tiny image and video runs train on the sharded 8-device mesh, and
the visualisation tool draws a trained model's attention maps."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from framework import trainer
from projects.token_learner import visualize
from tools import cli

SHAPES = "projects/token_learner/configs/synthetic_shapes_token_learner.py:test"
MOTION = "projects/token_learner/configs/synthetic_motion_token_learner.py:test"
MEAN_TEACHER = SHAPES + "_mean_teacher"


def _train(spec, tmp_path, *overrides):
    config = cli.load_config(spec, [f"data.data_dir={tmp_path / 'data'}",
                                           "checkpoint.async_save=false", "total_steps=4",
                                           "log_every=2", *overrides])
    config.evaluators = ml_collections.ConfigDict()  # Training only: fewer compiles.
    workdir = tmp_path / "run"
    result = trainer.train_and_evaluate(config, str(workdir))
    with open(workdir / "metrics.jsonl") as f:
        losses = [r["train/loss"] for r in map(json.loads, f) if "train/loss" in r]
    return config, workdir, result, losses


def _sharded_over_fsdp(params):
    """Returns how many params are split over the 8 devices of the fsdp axis."""
    count = 0
    for leaf in jax.tree.leaves(params):
        shard = leaf.addressable_shards[0].data.shape
        count += shard != leaf.shape and np.prod(leaf.shape) == 8 * np.prod(shard)
    return count


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    return _train(SHAPES, tmp_path_factory.mktemp("shapes"))


def test_tiny_image_model_trains_sharded(image_run):
    config, _, result, losses = image_run
    assert dict(config.mesh) == {"data": 1, "fsdp": -1, "tensor": 1}
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    learner = result.state.params["Transformer"]["TokenLearnerModuleV11_0"]
    assert _sharded_over_fsdp(learner) >= 1  # The TokenLearner's MLP is FSDP-sharded too.
    assert _sharded_over_fsdp(result.state.params) >= 10


def test_tiny_video_model_with_token_fuser_trains_sharded(tmp_path):
    _, _, result, losses = _train(MOTION, tmp_path, "model.use_token_fuser=True",
                                  "mesh.data=2", "mesh.fsdp=4")
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert "TokenFuser_0" in result.state.params["Transformer"]
    assert _sharded_over_fsdp(result.state.params) == 0  # fsdp=4 here: nothing split 8 ways.
    leaf = result.state.params["Transformer"]["encoderblock_0"]["MlpBlock_0"]["Dense_0"]["kernel"]
    assert leaf.addressable_shards[0].data.shape[1] == leaf.shape[1] // 4


def test_mean_teacher_variant_trains_and_evaluates_its_ema(image_run, tmp_path):
    """The project's own train step (self-distillation from the EMA params) trains, and the
    evaluator scores the EMA params."""
    config = cli.load_config(MEAN_TEACHER, [
        f"data.data_dir={image_run[0].data.data_dir}", "checkpoint.async_save=false",
        "total_steps=4", "log_every=2"])
    assert config.train_step.name == "token_learner.mean_teacher" and config.ema.decay > 0
    result = trainer.train_and_evaluate(config, str(tmp_path / "run"))
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        rows = [r for r in map(json.loads, f) if "train/loss" in r]
    assert len(rows) == 2 and rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rows[-1]["train/distill_kl"] > 0
    assert rows[-1]["train/loss"] > rows[-1]["train/supervised_loss"]
    assert 0.0 <= result.metrics["eval/classification/top1"] <= 1.0
    head = result.state.ema_params["head"]["kernel"]
    assert not np.allclose(head, result.state.params["head"]["kernel"])


def test_visualize_draws_the_trained_maps(image_run, tmp_path):
    config, workdir, _, _ = image_run
    paths = visualize.visualize(config, str(workdir), str(tmp_path / "maps"), num_examples=3)
    assert [os.path.basename(p) for p in paths] == [f"example_{i}.png" for i in range(3)]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 5_000


def test_visualize_pairs_video_frames_with_their_slices():
    video = np.zeros((8, 16, 16, 3), np.float32)
    video[4] = 1.0  # Frame 4 starts tubelet slice 2 (tubelet time 2).
    maps = np.arange(4 * 3 * 16, dtype=np.float32).reshape(4, 3, 16)  # 4 slices, 3 tokens.
    frames, grids = visualize.frames_and_grids(video, maps, (2, 4, 4))
    assert frames.shape == (4, 16, 16, 3) and grids.shape == (4, 3, 4, 4)
    assert frames[2].min() == 1.0 and frames[1].max() == 0.0
    np.testing.assert_array_equal(grids[2, 1].reshape(-1), maps[2, 1])
    # Maps pooled over the whole clip: slice r's part of each map goes with frame row r.
    clip_maps = np.arange(3 * 64, dtype=np.float32).reshape(1, 3, 64)
    _, grids = visualize.frames_and_grids(video, clip_maps, (2, 4, 4))
    np.testing.assert_array_equal(grids[1, 2].reshape(-1), clip_maps[0, 2, 16:32])


def test_visualize_needs_a_token_learner(image_run, tmp_path):
    config, workdir, _, _ = image_run
    with pytest.raises(ValueError, match="--learner=1"):
        visualize.visualize(config, str(workdir), str(tmp_path), num_examples=1, learner=1)
