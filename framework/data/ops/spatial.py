"""Spatial ops shared by images (H, W, C) and videos (T, H, W, C): resize, crop, flip, scale.

Every op here acts on `example[key]`, where key=None means "video" if present, else "image".
A video gets the same resize, crop and flip on every frame.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

from framework.data.preprocess import MultiViewOp
from framework.registry import PREPROCESS_OPS


def pixel_key(example: dict, key: str | None) -> str:
    """Returns `key`, or "video" / "image" (whichever the example has) when key is None."""
    if key is not None:
        return key
    for candidate in ("video", "image"):
        if candidate in example:
            return candidate
    raise KeyError(f"no 'video' or 'image' in the example (keys: {sorted(example)}); "
                   "decode it first (decode_frames / decode_image) or pass key=")


def as_hw(size) -> tuple[int, int]:
    """Returns (height, width) from an int or a pair; raises ValueError if not positive."""
    hw = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if len(hw) != 2 or any(not isinstance(v, int | np.integer) or v < 1 for v in hw):
        raise ValueError(f"size={size!r}: expected a positive int or (height, width).")
    return int(hw[0]), int(hw[1])


def resize_pixels(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Returns `pixels` (..., H, W, C) bilinearly resized to (..., height, width, C), same
    dtype (uint8 or float)."""
    h, w, c = pixels.shape[-3:]
    if (h, w) == (height, width):
        return pixels
    frames = pixels.reshape((-1, h, w, c))
    out = np.empty((len(frames), height, width, c), pixels.dtype)
    for i, frame in enumerate(frames):
        if pixels.dtype == np.uint8 and c in (3, 4):
            out[i] = np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))
            continue
        for ch in range(c):
            plane = Image.fromarray(frame[..., ch].astype(np.float32), mode="F")
            resized = np.asarray(plane.resize((width, height), Image.BILINEAR))
            out[i, ..., ch] = np.clip(resized, 0, 255) if pixels.dtype == np.uint8 else resized
    return out.reshape(pixels.shape[:-3] + (height, width, c))


def crop_pixels(pixels: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Returns the window [top:top+height, left:left+width] of (..., H, W, C) pixels."""
    h, w = pixels.shape[-3:-1]
    if height > h or width > w:
        raise ValueError(f"crop {height}x{width} is larger than the {h}x{w} pixels; resize "
                         "first (e.g. resize_small).")
    return pixels[..., top:top + height, left:left + width, :]


def short_side_size(h: int, w: int, size: int, round_down: bool = False) -> tuple[int, int]:
    """Returns (height, width) scaled so that the short side is `size`; the long side is
    rounded to the nearest pixel, or down with `round_down` (as DMVR's resize_smallest, the
    released video pipelines' resize)."""
    if round_down:
        return max(size, h * size // w), max(size, w * size // h)
    scale = size / min(h, w)
    return max(size, round(h * scale)), max(size, round(w * scale))


@dataclasses.dataclass
class SizedOp:
    """Base of ops with a target `size` (int or (height, width), checked) and a pixel `key`
    (keyword-only, so that subclasses' own arguments come next in positional order)."""

    size: int | tuple[int, int]
    key: str | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self):
        as_hw(self.size)


@PREPROCESS_OPS.register("resize_small")
@dataclasses.dataclass
class ResizeSmall:
    """Resizes so that the short side is `size` pixels (aspect ratio kept; the long side
    rounded down, as the released video recipes' test views)."""

    size: int
    key: str | None = None

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        h, w = example[k].shape[-3:-1]
        size = short_side_size(h, w, self.size, round_down=True)
        return {**example, k: resize_pixels(example[k], *size)}


@PREPROCESS_OPS.register("resize")
@dataclasses.dataclass
class Resize(SizedOp):
    """Resizes to `size` (int: square, or (height, width))."""

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        return {**example, k: resize_pixels(example[k], *as_hw(self.size))}


@PREPROCESS_OPS.register("scale_jitter")
@dataclasses.dataclass
class ScaleJitter:
    """Resizes by one random factor in [min_factor, max_factor] (both sides alike)."""

    min_factor: float = 0.9
    max_factor: float = 1.33
    key: str | None = None

    def __post_init__(self):
        if not 0 < self.min_factor <= self.max_factor:
            raise ValueError(f"need 0 < min_factor <= max_factor, got {self.min_factor}, "
                             f"{self.max_factor}.")

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        h, w = example[k].shape[-3:-1]
        factor = rng.uniform(self.min_factor, self.max_factor)
        size = (max(1, round(h * factor)), max(1, round(w * factor)))
        return {**example, k: resize_pixels(example[k], *size)}


@PREPROCESS_OPS.register("scale_jitter_crop")
@dataclasses.dataclass
class ScaleJitterCrop(SizedOp):
    """scale_jitter(min_factor, max_factor) then random_crop(size) in one step: the window
    that the crop would take from the scaled pixels is cut from the unscaled ones and only it
    is resized (the same draws and, up to interpolation at the borders, the same pixels, at a
    fraction of the cost for uint8 RGB)."""

    min_factor: float = 0.9
    max_factor: float = 1.33

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        pixels = example[k]
        h, w = pixels.shape[-3:-1]
        ch, cw = as_hw(self.size)
        factor = rng.uniform(self.min_factor, self.max_factor)
        scaled_h, scaled_w = max(1, round(h * factor)), max(1, round(w * factor))
        if ch > scaled_h or cw > scaled_w:
            raise ValueError(f"crop {ch}x{cw} is larger than the {scaled_h}x{scaled_w} scaled "
                             "pixels; resize first (e.g. resize_small).")
        top = int(rng.integers(0, scaled_h - ch + 1))
        left = int(rng.integers(0, scaled_w - cw + 1))
        if pixels.dtype != np.uint8 or pixels.shape[-1] != 3:
            scaled = resize_pixels(pixels, scaled_h, scaled_w)
            return {**example, k: crop_pixels(scaled, top, left, ch, cw)}
        sy, sx = h / scaled_h, w / scaled_w
        box = (left * sx, top * sy, (left + cw) * sx, (top + ch) * sy)
        frames = pixels.reshape((-1, h, w, 3))
        out = np.stack([np.asarray(Image.fromarray(f).resize((cw, ch), Image.BILINEAR, box=box))
                        for f in frames])
        return {**example, k: out.reshape(pixels.shape[:-3] + (ch, cw, 3))}


@dataclasses.dataclass
class CropOp(SizedOp):
    """Base of the crops of `size`: a subclass picks the window's top-left corner."""

    def corner(self, h: int, w: int, ch: int, cw: int, example: dict,
               rng: np.random.Generator) -> tuple[int, int]:
        """Returns (top, left) of a ch x cw window in h x w pixels."""
        raise NotImplementedError

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        h, w = example[k].shape[-3:-1]
        ch, cw = as_hw(self.size)
        top, left = self.corner(h, w, ch, cw, example, rng)
        return {**example, k: crop_pixels(example[k], top, left, ch, cw)}


@PREPROCESS_OPS.register("random_crop")
@dataclasses.dataclass
class RandomCrop(CropOp):
    """Crops `size` at a uniformly random position."""

    def corner(self, h, w, ch, cw, example, rng) -> tuple[int, int]:
        """A uniformly random corner."""
        return int(rng.integers(0, max(h - ch, 0) + 1)), int(rng.integers(0, max(w - cw, 0) + 1))


@PREPROCESS_OPS.register("center_crop")
@dataclasses.dataclass
class CenterCrop(CropOp):
    """Crops `size` from the centre."""

    def corner(self, h, w, ch, cw, example, rng) -> tuple[int, int]:
        """The centred corner."""
        return (h - ch) // 2, (w - cw) // 2


@PREPROCESS_OPS.register("three_crop")
@dataclasses.dataclass
class ThreeCrop(CropOp, MultiViewOp):
    """Multi-view: crop `size` at the start, centre or end of the long side (view digit 0, 1,
    2), centred on the short side: the three-crop test of video classification papers. A
    centre that falls between pixels is rounded up, as in Scenic's three_spatial_crops."""

    @property
    def num_views(self) -> int:
        """Three crops."""
        return 3

    def corner(self, h, w, ch, cw, example, rng) -> tuple[int, int]:
        """The corner of crop view_digit(example) along the long side."""
        digit = self.view_digit(example)
        mid_h, mid_w = -(-(h - ch) // 2), -(-(w - cw) // 2)
        if h > w:  # Portrait: crops slide down the height.
            return (0, mid_h, h - ch)[digit], mid_w
        return mid_h, (0, mid_w, w - cw)[digit]


@PREPROCESS_OPS.register("inception_crop")
@dataclasses.dataclass
class InceptionCrop:
    """Random-resized crop: a box of area_min..area_max of the area and aspect ratio
    aspect_min..aspect_max (log-uniform), resized to `size` (None: not resized). Falls back
    to the whole image after 10 failed draws."""

    size: int | tuple[int, int] | None = None
    area_min: float = 0.08
    area_max: float = 1.0
    aspect_min: float = 3 / 4
    aspect_max: float = 4 / 3
    key: str | None = None

    def __post_init__(self):
        if self.size is not None:
            as_hw(self.size)
        if not 0 < self.area_min <= self.area_max <= 1:
            raise ValueError("need 0 < area_min <= area_max <= 1.")

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        h, w = example[k].shape[-3:-1]
        top, left, ch, cw = 0, 0, h, w
        for _ in range(10):
            area = h * w * rng.uniform(self.area_min, self.area_max)
            aspect = math.exp(rng.uniform(math.log(self.aspect_min), math.log(self.aspect_max)))
            bw, bh = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < bh <= h and 0 < bw <= w:
                top, left = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
                ch, cw = bh, bw
                break
        pixels = crop_pixels(example[k], top, left, ch, cw)
        if self.size is not None:
            pixels = resize_pixels(pixels, *as_hw(self.size))
        return {**example, k: pixels}


@PREPROCESS_OPS.register("flip_lr")
@dataclasses.dataclass
class FlipLr:
    """Flips left-right with probability `p`."""

    p: float = 0.5
    key: str | None = None

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        if rng.uniform() >= self.p:
            return example
        k = pixel_key(example, self.key)
        return {**example, k: np.ascontiguousarray(example[k][..., ::-1, :])}


@PREPROCESS_OPS.register("value_range")
@dataclasses.dataclass
class ValueRange:
    """Maps pixels from [in_min, in_max] (uint8: 0..255) linearly to float32 [vmin, vmax]."""

    vmin: float = -1.0
    vmax: float = 1.0
    in_min: float = 0.0
    in_max: float = 255.0
    key: str | None = None

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        scale = (self.vmax - self.vmin) / (self.in_max - self.in_min)
        pixels = example[k].astype(np.float32)
        pixels *= np.float32(scale)  # In place: no float temporaries of a whole video.
        pixels += np.float32(self.vmin - self.in_min * scale)
        return {**example, k: pixels}


@PREPROCESS_OPS.register("normalize")
@dataclasses.dataclass
class Normalize:
    """uint8 pixels -> float32 (x / 255 - mean) / std per channel (ImageNet defaults)."""

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    key: str | None = None

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        mean = np.asarray(self.mean, np.float32) * 255
        std = np.asarray(self.std, np.float32) * 255
        return {**example, k: (example[k].astype(np.float32) - mean) / std}


@PREPROCESS_OPS.register("keep")
@dataclasses.dataclass
class Keep:
    """Keeps only `keys` (and the pipeline's view_index / video_index) of the example."""

    keys: tuple[str, ...]

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        keep = set(self.keys) | {"view_index", "video_index"}
        return {k: v for k, v in example.items() if k in keep}


@PREPROCESS_OPS.register("drop")
@dataclasses.dataclass
class Drop:
    """Removes `keys` from the example."""

    keys: tuple[str, ...]

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        return {k: v for k, v in example.items() if k not in set(self.keys)}
