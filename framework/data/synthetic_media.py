"""Small synthetic media files for tests and the input-pipeline benchmark: MP4 videos
(PyAV) whose frames show their own frame number, and JPEG images.

Frame i of a video is `frame_pixels(i, ...)`: a smooth colour gradient (to check spatial
resampling) with a grey band across the top whose level encodes i (read back with
`frame_number`, robust to video and JPEG compression).
"""

from __future__ import annotations

import fractions
import io

import av
import numpy as np
from PIL import Image

BAND_ROWS = 8  # Height of the top band that encodes the frame number.
BAND_STEP = 15  # Grey level per frame number: up to 16 distinguishable numbers.


def frame_pixels(index: int, height: int, width: int, seed: int = 0,
                 texture: float = 0.0) -> np.ndarray:
    """Returns uint8 (height, width, 3): frame `index` of a video (`seed` varies the
    gradient between videos). texture > 0 adds that much (std) of fixed per-video noise below
    the band, so that frames compress like natural images rather than smooth gradients."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = seed * 0.7
    frame = np.stack([
        128 + 100 * np.sin(x / width * 2 * np.pi + phase),
        128 + 100 * np.cos(y / height * 2 * np.pi + phase),
        128 + 60 * np.sin((x + y) / (width + height) * 4 * np.pi + phase)], axis=-1)
    if texture:
        frame += np.random.default_rng(seed).normal(0, texture, frame.shape)
    frame[:BAND_ROWS] = 8 + BAND_STEP * (index % 16)
    return np.clip(frame, 0, 255).astype(np.uint8)


def frame_number(pixels: np.ndarray) -> int:
    """Returns the frame number shown by uint8 pixels (H, W, 3) from `frame_pixels` (any
    size; the top band is read over its middle rows)."""
    rows = max(1, round(pixels.shape[0] * BAND_ROWS / 48 / 2))
    level = float(np.mean(pixels[:rows]))
    return int(round((level - 8) / BAND_STEP))


def write_video(path: str, num_frames: int = 16, height: int = 48, width: int = 64,
                fps: int = 8, seed: int = 0, texture: float = 0.0) -> list[np.ndarray]:
    """Writes an H.264 MP4 of `num_frames` frames (frame_pixels) at `fps`; returns them."""
    frames = [frame_pixels(i, height, width, seed, texture) for i in range(num_frames)]
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fractions.Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12"}
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def jpeg_bytes(pixels: np.ndarray, quality: int = 95) -> bytes:
    """Returns the JPEG encoding of uint8 (H, W, 3) pixels."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()
