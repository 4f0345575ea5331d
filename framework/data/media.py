"""Decoding source media for dataset preparation: videos with PyAV into JPEG frames at a
chosen frame rate and short side, images checked (fully decoded) and optionally resized.

Everything here raises `MediaError` (naming the file and the problem) for media that cannot be
used, so that the converter can skip and report it.
"""

from __future__ import annotations

import dataclasses
import io

import av
import numpy as np
from PIL import Image

from framework.data.ops.spatial import short_side_size


class MediaError(ValueError):
    """A source file is missing, corrupt, truncated or holds no frames."""


@dataclasses.dataclass(frozen=True)
class VideoFrames:
    """A decoded clip: `frames` JPEG bytes per frame, `timestamps` float32 (T,) in seconds
    from the clip start, `fps` the frame rate they were sampled at (source rate if kept)."""

    frames: list[bytes]
    timestamps: np.ndarray
    fps: float


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """Returns the JPEG bytes of a PIL image (RGB)."""
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=int(quality))
    return out.getvalue()


def resized(image: Image.Image, short_side: int, upscale: bool = False) -> Image.Image:
    """Returns `image` resized (bilinear) so that its short side is `short_side` (0: as is);
    an image whose short side is already at most `short_side` is kept unless `upscale`."""
    smallest = min(image.size)
    if not short_side or smallest == short_side or (smallest < short_side and not upscale):
        return image
    height, width = short_side_size(image.height, image.width, short_side)
    return image.resize((width, height), Image.BILINEAR)


def decode_video(path: str, *, fps: float = 0.0, short_side: int = 0, quality: int = 90,
                 start: float = 0.0, end: float | None = None,
                 upscale: bool = False) -> VideoFrames:
    """Decodes the first video stream of `path` between `start` and `end` seconds.

    fps > 0 resamples: for each time start + k / fps (before the end of the clip) the
    source frame nearest in time is kept (repeated when the source is slower); fps = 0 keeps
    every source frame. Frames are resized down to `short_side` (0: as is; smaller frames
    are enlarged only with `upscale`) and JPEG-encoded at `quality`. Raises MediaError for
    unreadable files and clips without frames.
    """
    sampler = _FrameSampler(fps, short_side, quality, upscale)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream.")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 0)
            if start > 0:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None or frame.time < start - 1e-6:
                    continue
                if end is not None and frame.time >= end - 1e-6:
                    break
                sampler.add(frame.time - start, frame)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as e:
        raise MediaError(f"{path}: cannot decode video ({type(e).__name__}: {e}).") from None
    if sampler.last is None:
        raise MediaError(f"{path}: no frames decoded between {start}s and "
                         f"{'the end' if end is None else f'{end}s'}.")
    duration = (end - start) if end is not None else sampler.last[0] + 1 / (rate or fps or 1)
    sampler.finish(duration)
    return VideoFrames(frames=sampler.frames,
                       timestamps=np.array(sampler.times, np.float32),
                       fps=float(fps) if fps > 0 else rate)


class _FrameSampler:
    """Streams decoded frames (av.VideoFrame); keeps each one (fps = 0) or, for each target
    time k / fps, the frame nearest to it, holding only the previous frame in memory. Only
    kept frames are converted to RGB, resized and JPEG-encoded."""

    def __init__(self, fps: float, short_side: int, quality: int, upscale: bool = False):
        self.fps, self.short_side, self.quality = fps, short_side, quality
        self.upscale = upscale
        self.frames: list[bytes] = []
        self.times: list[float] = []
        self.last: tuple[float, av.VideoFrame] | None = None
        self._last_jpeg: tuple[float, bytes] | None = None
        self._next = 0

    def _emit(self, time: float, frame: av.VideoFrame) -> None:
        if self._last_jpeg is None or self._last_jpeg[0] != time:
            image = resized(frame.to_image(), self.short_side, self.upscale)
            self._last_jpeg = (time, encode_jpeg(image, self.quality))
        self.frames.append(self._last_jpeg[1])
        self.times.append(time)

    def add(self, time: float, frame: av.VideoFrame) -> None:
        """Takes the next frame (seconds from the clip start, decoded frame)."""
        if self.fps <= 0:
            self._emit(time, frame)
        else:
            while self._next / self.fps <= time + 1e-9:
                target = self._next / self.fps
                if self.last is not None and target - self.last[0] < time - target:
                    self._emit(*self.last)
                else:
                    self._emit(time, frame)
                self._next += 1
        self.last = (time, frame)

    def finish(self, duration: float) -> None:
        """Fills the target times after the last frame and before `duration` with it."""
        while self.fps > 0 and self._next / self.fps < duration - 1e-6:
            self._emit(*self.last)
            self._next += 1


def read_image(data: bytes, name: str, *, short_side: int = 0, quality: int = 90,
               upscale: bool = False) -> bytes:
    """Checks that `data` is a complete image and returns the bytes to store: `data` itself
    when short_side is 0 or the image is no larger (unless `upscale`), else a JPEG resized
    to that short side. Raises MediaError for
    truncated or undecodable images."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if not short_side or (min(image.size) <= short_side and not upscale):
                return data
            return encode_jpeg(resized(image, short_side, upscale), quality)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise MediaError(f"{name}: cannot decode image ({type(e).__name__}: {e}).") from None
