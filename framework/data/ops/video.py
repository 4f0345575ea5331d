"""Video ops: choose frames (random window for training, evenly spaced clips for multi-view
eval) and decode the chosen JPEG frames.

Frames are chosen before decoding, so only the frames a clip uses are decoded. The window
is `num_frames` frames `stride` apart; a video shorter than the window loops.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image

from framework.data.preprocess import MultiViewOp
from framework.registry import PREPROCESS_OPS


def window_indices(num_available: int, start: int, num_frames: int, stride: int) -> np.ndarray:
    """Returns int (num_frames,): frame numbers start, start + stride, ... modulo the video's
    length `num_available`."""
    return (start + stride * np.arange(num_frames)) % num_available


def take_frames(example: dict, key: str, indices: np.ndarray) -> dict:
    """Returns the example with `key` (list of encoded frames or array (T, ...)) and, when
    present, "timestamps" (T,) restricted to `indices`."""
    frames = example[key]
    out = dict(example)
    if isinstance(frames, list | tuple):
        out[key] = [frames[i] for i in indices]
    else:
        out[key] = np.asarray(frames)[indices]
    timestamps = example.get("timestamps")
    if isinstance(timestamps, np.ndarray) and len(timestamps) == len(frames):
        out["timestamps"] = timestamps[indices]
    return out


def _check_window(num_frames: int, stride: int) -> None:
    if num_frames < 1 or stride < 1:
        raise ValueError(f"num_frames={num_frames} and stride={stride} must be >= 1.")


def _num_available(example: dict, key: str) -> int:
    count = len(example[key])
    if count == 0:
        raise ValueError(f"{key!r} holds no frames.")
    return count


@PREPROCESS_OPS.register("sample_frames")
@dataclasses.dataclass
class SampleFrames:
    """Training: keeps a window of `num_frames` frames `stride` apart starting at a random
    frame (any start whose window fits; any frame when the video is shorter)."""

    num_frames: int
    stride: int = 1
    key: str = "frames"

    def __post_init__(self):
        _check_window(self.num_frames, self.stride)

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        available = _num_available(example, self.key)
        span = (self.num_frames - 1) * self.stride + 1
        start = int(rng.integers(0, max(available - span, 0) + 1))
        return take_frames(example, self.key,
                           window_indices(available, start, self.num_frames, self.stride))


@PREPROCESS_OPS.register("sample_clips")
@dataclasses.dataclass
class SampleClips(MultiViewOp):
    """Multi-view eval: clip c of `num_clips` windows (`num_frames` frames `stride` apart)
    spread evenly from the first to the last frame (one clip: the centred window); the view
    digit picks c."""

    num_frames: int = 1
    stride: int = 1
    num_clips: int = 1
    key: str = "frames"

    def __post_init__(self):
        _check_window(self.num_frames, self.stride)
        if self.num_clips < 1:
            raise ValueError(f"num_clips={self.num_clips} must be >= 1.")

    @property
    def num_views(self) -> int:
        """One view per clip."""
        return self.num_clips

    def clip_start(self, available: int, clip: int) -> int:
        """Returns the first frame of clip `clip` of a video with `available` frames."""
        room = max(available - ((self.num_frames - 1) * self.stride + 1), 0)
        if self.num_clips == 1:
            return room // 2
        return round(clip * room / (self.num_clips - 1))

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        available = _num_available(example, self.key)
        start = self.clip_start(available, self.view_digit(example))
        return take_frames(example, self.key,
                           window_indices(available, start, self.num_frames, self.stride))


@PREPROCESS_OPS.register("decode_frames")
@dataclasses.dataclass
class DecodeFrames:
    """Decodes `key` (a list of JPEG/PNG bytes) into `out_key` uint8 (T, H, W, 3) and
    removes `key`."""

    key: str = "frames"
    out_key: str = "video"

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        frames = example[self.key]
        if not isinstance(frames, list | tuple):
            raise TypeError(f"{self.key!r} is {type(frames).__name__}, expected a list of "
                            "encoded frames.")
        out = {k: v for k, v in example.items() if k != self.key}
        out[self.out_key] = np.stack([decode_rgb(f) for f in frames])
        return out


def decode_rgb(data: bytes) -> np.ndarray:
    """Returns uint8 (H, W, 3) RGB pixels of an encoded image; raises ValueError (naming the
    problem) for truncated or undecodable bytes."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot decode image ({len(data)} bytes): {e}") from None
