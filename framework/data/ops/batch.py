"""Batch ops (config.data.train.batch_preprocess): mixup and cutmix with soft labels.

Each takes a batch dict {pixels: float (B, ...), label: int (B,) or soft (B, C)} and an rng,
and returns the batch with mixed pixels and `label` float32 (B, num_classes). Every example
is mixed with the next one in the batch (the last with the first).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from framework.data.ops.spatial import pixel_key
from framework.registry import PREPROCESS_OPS


def soft_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Returns float32 (B, num_classes): one-hot of int labels (B,), or soft labels as is."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float32)
    if num_classes is None or num_classes < 1:
        raise ValueError("num_classes is needed to turn int labels into soft labels.")
    return np.eye(num_classes, dtype=np.float32)[labels.astype(np.int64)]


def _float_pixels(batch: dict, key: str) -> np.ndarray:
    pixels = batch[key]
    if pixels.dtype.kind != "f":
        raise ValueError(f"{key!r} is {pixels.dtype}; mix float pixels (put value_range or "
                         "normalize in the per-example preprocess).")
    return pixels


@dataclasses.dataclass
class MixOp:
    """Base of the batch mixing ops: Beta(alpha, alpha) mixing weights, the number of classes
    (filled in from the dataset), the pixel key (None: video or image) and the label key."""

    alpha: float = 0.2
    num_classes: int | None = None
    key: str | None = None
    label_key: str = "label"

    def inputs(self, batch: dict) -> tuple[str, np.ndarray, np.ndarray]:
        """Returns (pixel key, float pixels (B, ...), soft labels float32 (B, C))."""
        k = pixel_key(batch, self.key)
        return k, _float_pixels(batch, k), soft_labels(batch[self.label_key], self.num_classes)


@PREPROCESS_OPS.register("mixup")
@dataclasses.dataclass
class MixUp(MixOp):
    """mixup (Zhang et al. 2018): x = lam x + (1 - lam) x_next, labels alike, with one
    lam ~ Beta(alpha, alpha) per batch."""

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict:
        k, pixels, labels = self.inputs(batch)
        lam = np.float32(rng.beta(self.alpha, self.alpha))
        mixed = lam * pixels + (1 - lam) * np.roll(pixels, -1, axis=0)
        soft = lam * labels + (1 - lam) * np.roll(labels, -1, axis=0)
        return {**batch, k: mixed.astype(pixels.dtype), self.label_key: soft}


@PREPROCESS_OPS.register("cutmix")
@dataclasses.dataclass
class CutMix(MixOp):
    """CutMix (Yun et al. 2019): pastes one box of the next example into each example (the
    same box for every frame of a video); box area 1 - lam with lam ~ Beta(alpha, alpha),
    and the labels are weighted by the pasted area."""

    alpha: float = 1.0

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict:
        k, pixels, labels = self.inputs(batch)
        h, w = pixels.shape[-3:-1]
        lam = rng.beta(self.alpha, self.alpha)
        bh, bw = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        top, bottom = max(cy - bh // 2, 0), min(cy + bh - bh // 2, h)
        left, right = max(cx - bw // 2, 0), min(cx + bw - bw // 2, w)
        mixed = np.array(pixels)
        mixed[..., top:bottom, left:right, :] = np.roll(pixels, -1, axis=0)[
            ..., top:bottom, left:right, :]
        kept = np.float32(1 - (bottom - top) * (right - left) / (h * w))
        soft = kept * labels + (1 - kept) * np.roll(labels, -1, axis=0)
        return {**batch, k: mixed, self.label_key: soft}
