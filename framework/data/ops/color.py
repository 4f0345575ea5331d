"""Colour augmentation of the video recipes (Scenic's `do_color_augment`): random
brightness, saturation, contrast and hue, then an occasional drop to grey."""

from __future__ import annotations

import dataclasses

import numpy as np

from framework.data.ops.spatial import pixel_key
from framework.registry import PREPROCESS_OPS

# ITU-R 601 luma weights, the grey conversion of the released pipelines.
GREY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """Returns HSV (..., 3) in [0, 1] (hue as a fraction of a turn) of RGB (..., 3) in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(-1)
    chroma = value - rgb.min(-1)
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(value == r, (g - b) / safe,
                   np.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(chroma > 0, (hue / 6.0) % 1.0, 0.0)
    saturation = np.where(value > 0, chroma / np.where(value > 0, value, 1.0), 0.0)
    return np.stack([hue, saturation, value], -1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of rgb_to_hsv: RGB (..., 3) in [0, 1] of HSV (..., 3)."""
    h, s, v = hsv[..., 0:1] * 6.0, hsv[..., 1:2], hsv[..., 2:3]
    k = (np.array([5.0, 3.0, 1.0], np.float32) + h) % 6.0
    return (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


def jitter_colors(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Returns float32 pixels (..., H, W, 3) in [0, 1] with one random brightness (+-32/255),
    saturation (x0.6-1.4), contrast (x0.6-1.4 about each frame's channel means) and hue
    (+-0.2 turn) change applied to every frame, clipped to [0, 1]."""
    brightness = rng.uniform(-32 / 255, 32 / 255)
    saturation, contrast = rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4)
    hue = rng.uniform(-0.2, 0.2)
    x = pixels + np.float32(brightness)
    hsv = rgb_to_hsv(x)
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
    x = hsv_to_rgb(hsv)
    mean = x.mean(axis=(-3, -2), keepdims=True)
    x = (x - mean) * np.float32(contrast) + mean
    hsv = rgb_to_hsv(x)
    hsv[..., 0] = (hsv[..., 0] + hue) % 1.0
    return np.clip(hsv_to_rgb(hsv), 0.0, 1.0)


@PREPROCESS_OPS.register("color_augment")
@dataclasses.dataclass
class ColorAugment:
    """With probability `p` jitters brightness, saturation, contrast and hue (jitter_colors),
    then with probability `grey_p` turns the pixels grey; the same change for every frame.
    uint8 (or float in [0, 255]) RGB in, float32 in [0, 255] out: put it before
    value_range."""

    p: float = 0.8
    grey_p: float = 0.0
    key: str | None = None

    def __post_init__(self):
        if not (0 <= self.p <= 1 and 0 <= self.grey_p <= 1):
            raise ValueError(f"color_augment: p={self.p}, grey_p={self.grey_p} must be "
                             "probabilities in [0, 1].")

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        pixels = example[k]
        if pixels.shape[-1] != 3:
            raise ValueError(f"color_augment needs RGB pixels (..., 3), got {pixels.shape}.")
        jitter, grey = rng.uniform() < self.p, rng.uniform() < self.grey_p
        if not (jitter or grey):
            return example
        x = pixels.astype(np.float32) / np.float32(255)
        if jitter:
            x = jitter_colors(x, rng)
        if grey:
            x = np.repeat((x @ GREY_WEIGHTS)[..., None], 3, axis=-1)
        return {**example, k: x * np.float32(255)}
