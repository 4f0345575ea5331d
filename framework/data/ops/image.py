"""Image ops: decode encoded bytes, and RandAugment on uint8 pixels."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from framework.data.ops.spatial import pixel_key
from framework.data.ops.video import decode_rgb
from framework.registry import PREPROCESS_OPS


@PREPROCESS_OPS.register("decode_image")
@dataclasses.dataclass
class DecodeImage:
    """Decodes `key` (JPEG/PNG bytes) into uint8 (H, W, 3) RGB pixels."""

    key: str = "image"

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        data = example[self.key]
        if not isinstance(data, bytes):
            raise TypeError(f"{self.key!r} is {type(data).__name__}, expected encoded bytes.")
        return {**example, self.key: decode_rgb(data)}


_FILL = (128, 128, 128)


def _affine(image: Image.Image, matrix) -> Image.Image:
    return image.transform(image.size, Image.AFFINE, matrix, Image.NEAREST, fillcolor=_FILL)


def _signed(level: float, scale: float, sign: float) -> float:
    return level / 10 * scale * sign


# name -> f(image, level in [0, 10+], random sign +-1) -> image
_AUGMENTS = {
    "identity": lambda im, lv, s: im,
    "autocontrast": lambda im, lv, s: ImageOps.autocontrast(im),
    "equalize": lambda im, lv, s: ImageOps.equalize(im),
    "invert": lambda im, lv, s: ImageOps.invert(im),
    "rotate": lambda im, lv, s: im.rotate(_signed(lv, 30, s), fillcolor=_FILL),
    "posterize": lambda im, lv, s: ImageOps.posterize(im, max(1, 8 - int(lv / 10 * 4))),
    "solarize": lambda im, lv, s: ImageOps.solarize(im, max(0, 256 - int(lv / 10 * 256))),
    "color": lambda im, lv, s: ImageEnhance.Color(im).enhance(1 + _signed(lv, 0.9, s)),
    "contrast": lambda im, lv, s: ImageEnhance.Contrast(im).enhance(1 + _signed(lv, 0.9, s)),
    "brightness": lambda im, lv, s: ImageEnhance.Brightness(im).enhance(
        1 + _signed(lv, 0.9, s)),
    "sharpness": lambda im, lv, s: ImageEnhance.Sharpness(im).enhance(
        1 + _signed(lv, 0.9, s)),
    "shear_x": lambda im, lv, s: _affine(im, (1, _signed(lv, 0.3, s), 0, 0, 1, 0)),
    "shear_y": lambda im, lv, s: _affine(im, (1, 0, 0, _signed(lv, 0.3, s), 1, 0)),
    "translate_x": lambda im, lv, s: _affine(
        im, (1, 0, _signed(lv, 0.45, s) * im.size[0], 0, 1, 0)),
    "translate_y": lambda im, lv, s: _affine(
        im, (1, 0, 0, 0, 1, _signed(lv, 0.45, s) * im.size[1])),
}
AUGMENT_NAMES = tuple(_AUGMENTS)


@PREPROCESS_OPS.register("randaugment")
@dataclasses.dataclass
class RandAugment:
    """RandAugment (Cubuk et al. 2020): `num_layers` ops drawn uniformly from
    AUGMENT_NAMES, each at `magnitude` (0..10 spans each op's range; larger is stronger) with
    a random sign. uint8 RGB pixels in and out; a video gets the same ops on every frame."""

    num_layers: int = 2
    magnitude: float = 10.0
    key: str | None = None

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        k = pixel_key(example, self.key)
        pixels = example[k]
        if pixels.dtype != np.uint8 or pixels.shape[-1] != 3:
            raise ValueError(f"randaugment needs uint8 RGB pixels, got {pixels.dtype} "
                             f"{pixels.shape}; put it before value_range / normalize.")
        chosen = [(AUGMENT_NAMES[rng.integers(len(AUGMENT_NAMES))],
                   1.0 if rng.uniform() < 0.5 else -1.0) for _ in range(self.num_layers)]
        frames = pixels.reshape((-1,) + pixels.shape[-3:])
        out = np.empty_like(frames)
        for i, frame in enumerate(frames):
            image = Image.fromarray(frame)
            for name, sign in chosen:
                image = _AUGMENTS[name](image, self.magnitude, sign)
            out[i] = np.asarray(image)
        return {**example, k: out.reshape(pixels.shape)}
