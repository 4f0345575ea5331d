"""Multi-view eval: every clip x crop view of every video, in order, and per-video averaging."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import framework.data  # noqa: F401  (registers datasets and ops)
import framework.evaluators  # noqa: F401
from framework import registry, sharding
from framework.data import pipeline
from framework.evaluators.multiview import ViewAverager
from framework.registry import ConfigError

MOTION = {"name": "synthetic_motion", "num_train": 16, "num_eval": 5, "num_frames": 8,
          "image_size": 12}
EVAL_PP = "sample_clips(2, stride=2, num_clips=3, key='video')|three_crop(8)"


def data_config(data_dir, preprocess=EVAL_PP):
    c = ml_collections.ConfigDict()
    c.data_dir = str(data_dir)
    c.worker_count = 0
    c.train = dict(MOTION, split="train")
    c.eval = dict(MOTION, split="eval", preprocess=preprocess)
    return c


def expected_view(video: np.ndarray, clip: int, crop: int) -> np.ndarray:
    """The view by hand: 8 frames, windows of 2 frames 2 apart start at 0, 3, 6 (evenly
    spread over the 8 - 3 = 5 free frames: round(0, 2.5, 5)); 12x12 crops of 8 at left 0, 2, 4
    (square frames slide along the width)."""
    start = (0, 2, 5)[clip]  # round(2.5) == 2 (round half to even)
    left = (0, 2, 4)[crop]
    return video[[start, start + 2], 2:10, left:left + 8]


def test_all_views_of_each_video_in_order(tmp_path):
    config = data_config(tmp_path)
    spec = pipeline.build_dataset(config, "eval")
    videos = [spec.decode(spec.source[i])["video"] for i in range(spec.num_examples)]
    batches = list(pipeline.make_eval_batches(config, 8)())
    stacked = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    mask = stacked["mask"]
    assert len(batches) == 6 and mask.sum() == 5 * 9  # 45 views in 6 batches of 8
    np.testing.assert_array_equal(stacked["video_index"][mask], np.repeat(np.arange(5), 9))
    np.testing.assert_array_equal(stacked["view_index"][mask], np.tile(np.arange(9), 5))
    assert stacked["video"].shape[1:] == (2, 8, 8, 3)
    for row in np.flatnonzero(mask):
        video, view = stacked["video_index"][row], stacked["view_index"][row]
        np.testing.assert_array_equal(stacked["video"][row],
                                      expected_view(videos[video], view // 3, view % 3))
    assert np.all(stacked["video_index"][~mask] == -1)


def test_views_split_over_processes_cover_each_video_once(tmp_path):
    config = data_config(tmp_path)
    seen = []
    for index in range(2):
        batches = list(pipeline.make_eval_batches(config, 8, process_index=index,
                                                  process_count=2)())
        assert len(batches) == 7  # ceil(ceil(5 / 2) * 9 / 4): equal on both processes
        for b in batches:
            seen += list(zip(b["video_index"][b["mask"]], b["view_index"][b["mask"]]))
    assert sorted(seen) == [(v, k) for v in range(5) for k in range(9)]


def test_multiview_ops_are_rejected_in_training(tmp_path):
    config = data_config(tmp_path)
    config.train.preprocess = EVAL_PP
    with pytest.raises(ConfigError, match=r"config\.data\.train\.preprocess.*9 views"):
        pipeline.make_train_loader(config, 8, 0)


def test_view_averager_averages_per_video_across_batches():
    averager = ViewAverager()
    # Video 0 (label 1, 3 views): one view favours class 0, the mean class 1.
    averager.add(np.array([0, 0, 1]), np.array([[0.6, 0.4, 0], [0.1, 0.9, 0], [0, 0, 1.0]]),
                 np.array([1, 1, 0]), np.array([True, True, True]))
    averager.add(np.array([0, 1, -1]), np.array([[0.5, 0.5, 0], [0.2, 0.3, 0.5], [1, 0, 0]]),
                 np.array([1, 0, 0]), np.array([True, True, False]))
    videos, mean, labels = averager.mean_scores()
    np.testing.assert_array_equal(videos, [0, 1])
    np.testing.assert_allclose(mean, [[0.4, 0.6, 0], [0.1, 0.15, 0.75]])
    result = averager.result([1, 2])
    assert result == {"top1": 0.5, "top2": 0.5, "count": 2.0, "views_per_video": 2.5}
    with pytest.raises(ValueError, match="different labels"):
        averager.add(np.array([0]), np.ones((1, 3)), np.array([2]), np.array([True]))


@registry.MODELS.register("test_pixel_mean_classifier")
class PixelMeanClassifier(nn.Module):
    """Logits = Dense(mean of each channel over all pixels): tiny, but view-dependent."""

    num_classes: int = 4

    @nn.compact
    def __call__(self, batch, train: bool = False):
        x = jnp.mean(batch["video"], axis=(1, 2, 3))
        return nn.Dense(self.num_classes)(x)


def test_evaluator_reports_per_video_accuracy_of_averaged_softmax(tmp_path):
    config = ml_collections.ConfigDict({"batch_size": 8, "data": data_config(tmp_path)})
    mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    model = PixelMeanClassifier()
    params = model.init(jax.random.key(0), {"video": jnp.zeros((1, 2, 8, 8, 3))})["params"]
    params = jax.tree.map(lambda p: p * 50, params)  # Sharp, view-dependent softmax.
    evaluator = registry.EVALUATORS.build("multiview_classification", {"topk": (1, 2)},
                                          "config.evaluators.multiview_classification",
                                          model=model, config=config, mesh=mesh)
    result = evaluator.run({"params": params})

    batches = list(pipeline.make_eval_batches(config.data, 8)())
    stacked = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    mask = stacked["mask"]
    probs = np.asarray(jax.nn.softmax(model.apply({"params": params}, stacked)))[mask]
    mean = probs.reshape(5, 9, -1).mean(1)
    labels = stacked["label"][mask][::9]
    assert result["count"] == 5 and result["views_per_video"] == 9
    assert result["top1"] == pytest.approx(np.mean(mean.argmax(-1) == labels))
    # Averaging matters here: per-view argmax differs from the per-video one for some view.
    assert np.any(probs.argmax(-1) != np.repeat(mean.argmax(-1), 9))
