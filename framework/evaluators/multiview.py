"""Multi-view classification: average the logits (as Scenic's ViViT / MTV tests do) or the
softmax scores over the views (clips x crops) of each video, then top-k accuracy per video.

The eval pipeline turns each video into consecutive examples carrying int32 `video_index`
and `view_index` (see framework.data.pipeline and the multi-view ops sample_clips and
three_crop); views of one video may fall into different batches and, with several hosts,
different processes: scores are gathered to every process and summed per video.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from framework import registry, sharding
from framework.evaluators.classification import ClassificationEvaluator
from framework.losses import logits_of
from framework.registry import ConfigError

# What is averaged over a video's views: "logits" (the released recipes) or "softmax".
AVERAGES = ("logits", "softmax")


def view_scores(logits: jax.Array, average: str) -> jax.Array:
    """Returns the per-view scores (B, C) that are averaged over views: float32 `logits`
    (B, C) themselves or their softmax, as `average` ("logits" / "softmax") says."""
    logits = logits.astype(jnp.float32)
    return logits if average == "logits" else jax.nn.softmax(logits, axis=-1)


class ViewAverager:
    """Sums per-view class scores per video; `result` gives per-video top-k accuracy."""

    def __init__(self):
        self.scores: dict[int, np.ndarray] = {}
        self.views: dict[int, int] = {}
        self.labels: dict[int, int] = {}

    def add(self, video_index: np.ndarray, scores: np.ndarray, labels: np.ndarray,
            mask: np.ndarray) -> None:
        """Adds a batch: video_index int (B,), scores float (B, C) (logits or softmax), labels int
        (B,) or soft (B, C), mask bool (B,) (False: padding, ignored)."""
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(-1)
        for video, score, label in zip(np.asarray(video_index)[mask],
                                       np.asarray(scores, np.float64)[mask], labels[mask]):
            video, label = int(video), int(label)
            if video in self.scores:
                if self.labels[video] != label:
                    raise ValueError(f"video {video}: views carry different labels "
                                     f"({self.labels[video]} and {label}).")
                self.scores[video] += score
                self.views[video] += 1
            else:
                self.scores[video], self.views[video], self.labels[video] = score.copy(), 1, label

    def mean_scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (video indices int (V,), mean scores float (V, C), labels int (V,)),
        sorted by video index."""
        videos = np.array(sorted(self.scores), np.int64)
        mean = np.stack([self.scores[v] / self.views[v] for v in videos])
        return videos, mean, np.array([self.labels[v] for v in videos], np.int64)

    def result(self, topk: Sequence[int]) -> dict[str, float]:
        """Returns {"top<k>": accuracy over videos, "count": videos, "views_per_video": mean}."""
        if not self.scores:
            raise ValueError("multiview_classification: the eval split yielded no examples.")
        _, mean, labels = self.mean_scores()
        order = np.argsort(-mean, axis=-1, kind="stable")
        out = {}
        for k in topk:
            out[f"top{k}"] = float(np.mean(np.any(order[:, :k] == labels[:, None], axis=-1)))
        out["count"] = float(len(labels))
        out["views_per_video"] = float(np.mean(list(self.views.values())))
        return out


@registry.EVALUATORS.register("multiview_classification")
class MultiViewClassificationEvaluator(ClassificationEvaluator):
    """Top-k accuracy per video from its views' logits averaged (default, as the released
    ViViT / MTV recipes) or, with average="softmax", its views' softmax scores averaged.

    Config keys as the "classification" evaluator: `data` (which config.data entry; its
    preprocess makes the views, e.g. "sample_clips(32, stride=2, num_clips=4)|decode_frames|
    resize_small(256)|three_crop(224)|value_range(-1, 1)"), `batch_size` (global; 0 =
    config.batch_size), `topk` and `label_key`, plus `average` ("logits" or "softmax").
    """

    def __init__(self, *, average: str = "logits", **kwargs):
        """Takes `average` (one of AVERAGES) and ClassificationEvaluator's keyword arguments."""
        if average not in AVERAGES:
            raise ConfigError(f"config.evaluators.*.average={average!r}: use one of {AVERAGES}.")
        self.average = average
        super().__init__(**kwargs)

    def _sums(self, variables, batch: dict) -> dict[str, jax.Array]:
        # The base class jits this as its step: here it returns the per-view scores.
        return self._scores(variables, batch)

    def _scores(self, variables, batch: dict) -> dict[str, jax.Array]:
        """Returns per-view "scores" (B, C) (view_scores), "video_index", "label" and "mask"
        of a global batch (subclasses with other heads override this)."""
        logits = logits_of(self.model.apply(variables, batch, train=False))
        return {"scores": view_scores(logits, self.average),
                "video_index": batch["video_index"], "label": batch[self.label_key],
                "mask": batch["mask"]}

    def run(self, variables) -> dict[str, float]:
        """Evaluates the model `variables` ({"params": ...} and collections); returns
        {"top1", "top5", ..., "count" (videos), "views_per_video"}."""
        averager = ViewAverager()
        for local in self.batches():
            out = self._step(variables, sharding.shard_batch(local, self.mesh))
            out = multihost_utils.process_allgather(out, tiled=True)
            averager.add(out["video_index"], out["scores"], out["label"],
                         np.asarray(out["mask"], bool))
        num_classes = next(iter(averager.scores.values())).shape[-1] if averager.scores else 1
        return averager.result([min(k, num_classes) for k in self.topk])
