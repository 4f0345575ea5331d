"""Train and evaluate 3 steps from the output of tools/prepare_dataset (real MP4s / JPEGs
made at test time): video with mixup and a multi-view eval, images with RandAugment and
cutmix."""

from __future__ import annotations

import json
import os

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import pytest

import framework.data  # noqa: F401  (registers datasets and ops)
from configs import trainer_defaults
from framework import registry, trainer
from framework.data import synthetic_media as media
from tools import prepare_dataset


@registry.MODELS.register("test_pool_classifier")
class PoolClassifier(nn.Module):
    """Per-pixel features (a 1x1 conv), mean-pooled over all but the batch and feature axes,
    then a linear head: a model that compiles in a blink."""

    num_classes: int = 2
    input_key: str = "video"

    @nn.compact
    def __call__(self, batch, train: bool = False):
        x = nn.relu(nn.Dense(8)(batch[self.input_key]))
        return nn.Dense(self.num_classes)(jnp.mean(x, axis=tuple(range(1, x.ndim - 1))))


def make_config(out, model, train_pp, eval_pp, batch_pp, evaluator):
    c = trainer_defaults.get_config()
    c.total_steps, c.batch_size, c.log_every = 3, 8, 1
    c.eval_every = c.checkpoint_every = 0
    c.checkpoint.async_save = False
    c.model = ml_collections.ConfigDict(model)
    c.optimizer.lr = 1e-3
    c.schedule.warmup_steps = 1
    c.data.train = ml_collections.ConfigDict(dict(
        name="array_record", path=str(out), split="train", preprocess=train_pp,
        batch_preprocess=batch_pp))
    c.data.eval = ml_collections.ConfigDict(dict(
        name="array_record", path=str(out), split="eval", preprocess=eval_pp))
    c.evaluators = ml_collections.ConfigDict({evaluator: {"data": "eval", "topk": (1, 2)}})
    return c


def final_metrics(workdir) -> tuple[list[dict], dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if "train/loss" in r], {k: v for r in rows for k, v in r.items()}


@pytest.fixture(scope="module")
def video_data(tmp_path_factory):
    """8 train and 4 eval videos of 2 classes, prepared into one dataset directory."""
    root = tmp_path_factory.mktemp("media")
    for split, count in (("train", 4), ("eval", 2)):
        for c, name in enumerate(("left", "right")):
            os.makedirs(root / split / name)
            for v in range(count):
                media.write_video(str(root / split / name / f"{v}.mp4"), num_frames=10,
                                  seed=c * 10 + v)
    out = root / "prepared"
    for split in ("train", "eval"):
        assert prepare_dataset.main(["videos", "--input", str(root / split), "--split", split,
                                     "--output", str(out), "--short_side", "24",
                                     "--workers", "1"]) == 0
    return out


def test_train_and_multiview_eval_3_steps_on_prepared_videos(video_data, tmp_path):
    config = make_config(
        video_data, {"name": "test_pool_classifier", "num_classes": 2},
        "sample_frames(4, stride=2)|decode_frames|resize_small(20)|random_crop(16)|flip_lr|"
        "value_range(-1, 1)",
        "sample_clips(4, stride=2, num_clips=2)|decode_frames|resize_small(16)|three_crop(16)|"
        "value_range(-1, 1)",
        "mixup(0.2)", "multiview_classification")
    trainer.train_and_evaluate(config, str(tmp_path))
    steps, last = final_metrics(tmp_path)
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(r["train/loss"] > 0 for r in steps)
    assert last["eval/multiview_classification/count"] == 4
    assert last["eval/multiview_classification/views_per_video"] == 6
    assert 0 <= last["eval/multiview_classification/top1"] <= 1


def test_train_and_eval_3_steps_on_prepared_images(tmp_path):
    root = tmp_path / "images"
    for split, count in (("train", 4), ("eval", 2)):
        for c, name in enumerate(("a", "b")):
            os.makedirs(root / split / name)
            for i in range(count):
                pixels = media.frame_pixels(i, 40, 48, seed=c * 10 + i)
                (root / split / name / f"{i}.jpg").write_bytes(media.jpeg_bytes(pixels))
    out = tmp_path / "prepared"
    for split in ("train", "eval"):
        assert prepare_dataset.main(["images", "--input", str(root / split), "--split", split,
                                     "--output", str(out), "--workers", "1"]) == 0
    model = dict(name="test_pool_classifier", num_classes=2, input_key="image")
    config = make_config(
        out, model,
        "decode_image|inception_crop(16)|flip_lr|randaugment(2, 5)|value_range(-1, 1)",
        "decode_image|resize_small(18)|center_crop(16)|value_range(-1, 1)",
        "cutmix(1.0)", "classification")
    trainer.train_and_evaluate(config, str(tmp_path / "workdir"))
    steps, last = final_metrics(tmp_path / "workdir")
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert last["eval/classification/count"] == 4
